"""`VideoMuxer`: encode `Frame`s and mux them, with copied audio/subtitle packets, into one output.

The part every output shares: a file (`FileSink`), an HLS playlist (`HlsSink`) and an RTSP
publish (`RtspSink`) differ only in where the container goes and in how it is finished. The
caller opens the container, builds the muxer on it (streams added, encoder opened), writes the
header itself (so that a refusal is phrased as that output's), then writes and `finish`es.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from fractions import Fraction

import av
import av.container
import av.stream
from av.bitstream import BitStreamFilterContext
from av.video.codeccontext import VideoCodecContext

from vsr.errors import OutputError
from vsr.media.chunked_encode import ChunkedEncoder, chunk_frames, chunked_settings, probe_instances
from vsr.media.containers import OutputContainerKind
from vsr.media.copied_dts import IncreasingDts
from vsr.media.encoders import configure_encoder, encoder_options, encoder_profile
from vsr.media.ffmpeg_errors import ffmpeg_reason
from vsr.media.frame import Frame, pixel_layout
from vsr.media.hdr import hdr_note
from vsr.media.output_spec import VideoOutputSpec
from vsr.media.planes import copy_planes_into
from vsr.media.tags import stream_tags, write_file_tags

__all__ = ["VideoMuxer", "WriteFailure"]

log = logging.getLogger(__name__)

# How a write error becomes the one-line error of this output: (error, what was being done,
# frames written so far) -> the exception to raise.
WriteFailure = Callable[[BaseException, str, int], OutputError]


# frame durations waiting for their packets: far more than any encoder's delay
_MAX_WAITING_DURATIONS = 512


class VideoMuxer:
    """The video stream and the copied streams of one open output container.

    ``name`` is what messages and notes call the output. ``on_write_error`` phrases a failed
    write (the file sink says which file and whether the disk is full; the RTSP sink says the
    server dropped the publish). ``chunked``: the output may take ``spec.encoder_instances``
    encoders on GOP-aligned chunks (`ChunkedEncoder`); a file can, a live publish or HLS (whose
    segments are cut by forced keyframes) cannot and says so in a note.
    """

    def __init__(
        self,
        container: av.container.OutputContainer,
        name: str,
        kind: OutputContainerKind,
        spec: VideoOutputSpec,
        passthrough: Sequence[av.stream.Stream],
        on_write_error: WriteFailure,
        *,
        chunked: bool = False,
    ) -> None:
        self.container = container
        self.name = name
        self.kind = kind
        self.spec = spec
        self.notes: list[str] = []
        self.frames_written = 0
        self.last_pts: int | None = None
        self._on_write_error = on_write_error
        self._rounded_pts = False
        self._negative_noted = False
        self._slow_path_logged = False
        self._out_layout = pixel_layout(spec.encoder_pix_fmt)
        self._bsfs: dict[int, BitStreamFilterContext] = {}
        self._options, self._threads = encoder_options(spec), spec.threads
        self._chunked: ChunkedEncoder | None = None
        # frame durations in the output time base by pts, until the frame's packet comes out of
        # the encoder (encoders pass no duration through; at most their delay's worth waits here)
        self._durations: dict[int, int] = {}
        # a muxer without TS_NONSTRICT (MPEG-TS, HLS, RTSP) needs each copied dts above the last
        self._copied_dts = IncreasingDts(
            strict=not container.format.flags & av.format.Flags.ts_nonstrict.value
        )
        instances = spec.encoder_instances if chunked else 1
        if spec.encoder_instances > 1 and not chunked:
            self.note(f"{kind.ext} outputs are encoded by one encoder; --encoders is for files")
        if instances > 1:
            self._options, self._threads = chunked_settings(spec, self._options)
        self._video = self._add_video()
        self._streams = self._add_passthrough(passthrough)
        for lost in (
            write_file_tags(container, self._video, spec.tags, kind),
            hdr_note(spec.codec, spec.hdr),
        ):
            if lost is not None:
                self.note(lost)
        extradata = self._probe_instances(instances) if instances > 1 else None
        self._open_encoder()
        if extradata is not None:
            self._chunked = self._start_chunked(instances, extradata)

    # -- setup ----------------------------------------------------------------------------------

    def _add_video(self) -> av.video.stream.VideoStream:
        spec, kind = self.spec, self.kind
        stream = self.container.add_stream(
            spec.codec, rate=spec.frame_rate, options=self._options, time_base=spec.time_base
        )
        configure_encoder(stream.codec_context, spec, threads=self._threads)
        stream.time_base = spec.time_base
        if spec.rotation:
            if kind.rotation:
                stream.set_display_rotation(spec.rotation)
            else:
                self.note(
                    f"{kind.ext} cannot store a rotation; the {spec.rotation:g} degree rotation is lost"
                )
        # containers with a fixed clock (Matroska: ms) round timestamps that fall between ticks;
        # write_frame counts the ones that do and the owner's close() says so
        self.tick = (
            kind.tick if kind.tick is not None and (spec.time_base / kind.tick).denominator != 1 else None
        )
        self.rounded = 0
        return stream

    def _add_passthrough(self, streams: Sequence[av.stream.Stream]) -> dict[int, av.stream.Stream]:
        mapping = {}
        for source in streams:
            if source.type == "attachment" and not self.kind.attachments:
                self.note(
                    f"attachment {source.metadata.get('filename', source.index)} is not copied to {self.kind.ext}"
                )
                continue
            out = self.container.add_stream_from_template(source)
            for key, value in stream_tags(source):
                out.metadata[key] = value
            out.disposition = source.disposition
            mapping[source.index] = out
            if self._needs_adts_conversion(source):
                # AAC from MPEG-TS comes with ADTS headers and no AudioSpecificConfig; MP4 and
                # Matroska store raw frames plus that config, which aac_adtstoasc extracts
                # from the first packet. (FFmpeg's automatic filter does not cover this.)
                self._bsfs[source.index] = BitStreamFilterContext("aac_adtstoasc", source)
        return mapping

    def _needs_adts_conversion(self, source: av.stream.Stream) -> bool:
        context = source.codec_context
        return (
            self.kind.format not in ("mpegts", "hls")
            and context is not None
            and context.codec.canonical_name == "aac"
            and not context.extradata
        )

    def _open_encoder(self) -> None:
        spec = self.spec
        try:
            # Opened here, before the header, so a refusal is the encoder's and says so.
            self._video.codec_context.open()
        except (av.FFmpegError, ValueError) as error:
            hint = (
                " (NVENC needs an NVIDIA GPU that has a video encoder, and its driver; "
                "use libx264, libx265 or libsvtav1 otherwise)"
                if encoder_profile(spec.codec).hardware
                else ""
            )
            raise OutputError(
                f"{spec.codec} refused to encode {spec.width}x{spec.height} {spec.encoder_pix_fmt}: "
                f"{ffmpeg_reason(error)}{hint}"
            ) from None

    def _new_instance(self, options: dict[str, str], threads: int) -> VideoCodecContext:
        """An unopened encoder set up like the stream's own (flags: the container's global header)."""
        main = self._video.codec_context
        context = av.CodecContext.create(self.spec.codec, "w")
        assert isinstance(context, VideoCodecContext)
        configure_encoder(context, self.spec, threads=threads)
        context.framerate = main.framerate
        # what add_stream gives a video stream (PyAV reads a bit rate of 0 as None, and its
        # bit_rate_tolerance getter returns nothing)
        context.bit_rate = main.bit_rate or 0
        context.bit_rate_tolerance = 128000
        context.flags = main.flags
        context.options = dict(options)
        return context

    def _probe_instances(self, instances: int) -> bytes | None:
        """The headers all instances make, or None after going back to one encoder's settings."""
        try:
            extradata = probe_instances(self._new_instance, self._options, self._threads)
        except (av.FFmpegError, ValueError) as error:  # the stream's own encoder says why, next
            log.debug("%s: opening a chunk encoder failed: %s", self.name, ffmpeg_reason(error))
            extradata = None
        if extradata is None:
            self._one_encoder_after_all(instances, "two fresh instances")
            self._options, self._threads = encoder_options(self.spec), self.spec.threads
            context = self._video.codec_context
            context.options, context.thread_count = dict(self._options), self._threads
        return extradata

    def _start_chunked(self, instances: int, extradata: bytes) -> ChunkedEncoder | None:
        if bytes(self._video.codec_context.extradata or b"") != extradata:
            self._one_encoder_after_all(instances, "the stream's encoder and a fresh instance")
            return None
        gop, chunk = chunk_frames(self.spec)
        log.info(
            "%s: %d %s encoders on chunks of %d frames (GOP %d), %d threads each",
            self.name, instances, self.spec.codec, chunk, gop, self._threads,
        )  # fmt: skip
        return ChunkedEncoder(
            make=self._new_instance, options=self._options, threads=self._threads,
            instances=instances, chunk=chunk, extradata=extradata, stream=self._video,
            mux=self._mux_chunked,
            fail=lambda error, doing: self._on_write_error(error, doing, self.frames_written),
        )  # fmt: skip

    def _one_encoder_after_all(self, instances: int, which: str) -> None:
        text = (
            f"{which} of {self.spec.codec} made different headers (extradata): "
            f"encoding with one encoder instead of {instances}"
        )
        self.notes.append(text)
        log.warning("%s: %s", self.name, text)

    def _mux_chunked(self, packets: list[av.Packet]) -> None:
        try:
            self.container.mux(self._with_durations(packets))
        except av.FFmpegError as error:
            raise self._on_write_error(error, "muxing encoded chunks", self.frames_written) from None

    # -- writing --------------------------------------------------------------------------------

    def write_frame(self, frame: Frame, *, keyframe: bool = False) -> None:
        """Encode one frame (as a keyframe if ``keyframe``); its pts must increase frame to frame."""
        spec = self.spec
        if (frame.width, frame.height) != (spec.width, spec.height):
            raise ValueError(
                f"frame {frame.index} is {frame.width}x{frame.height}, the output is {spec.width}x{spec.height}"
            )
        pts = self.output_pts(frame)
        if pts < 0 and not self._negative_noted:
            self._note_negative_time()
        if self.last_pts is not None and pts <= self.last_pts:
            raise ValueError(
                f"frame {frame.index} has pts {pts}, not after the previous frame's {self.last_pts}"
            )
        video_frame = self._video_frame(frame)
        video_frame.pts = pts
        if frame.duration > 0:
            duration = Fraction(frame.duration) * frame.time_base / self.spec.time_base
            self._durations[pts] = max(1, round(duration))
        video_frame.time_base = spec.time_base
        color = spec.tagged_color
        video_frame.colorspace = int(color.matrix)
        video_frame.color_range = int(color.range)
        if keyframe:
            # libx264/x265 turn a frame typed I into a keyframe (an IDR with closed GOPs)
            video_frame.pict_type = av.video.frame.PictureType.I
        if self._chunked is not None:
            self._chunked.encode(video_frame, frame.index)
        else:
            try:
                self.container.mux(self._with_durations(self._video.encode(video_frame)))
            except av.FFmpegError as error:
                raise self._on_write_error(
                    error, f"encoding frame {frame.index}", self.frames_written
                ) from None
        self.last_pts = pts
        self.frames_written += 1
        if self.tick is not None and (pts * spec.time_base / self.tick).denominator != 1:
            self.rounded += 1

    def write_packet(self, packet: av.Packet) -> None:
        """Mux a packet demuxed from one of the passthrough streams, byte for byte."""
        if packet.size == 0:
            return  # a demuxer's end-of-stream flush packet carries nothing to store
        out = self._streams.get(packet.stream_index)
        if out is None:
            raise ValueError(
                f"packet of input stream #{packet.stream_index} is not from a passthrough stream"
            )
        # The packet keeps its input time base; muxing rescales its timestamps to the output's.
        if packet.pts is not None and packet.pts < 0 and not self._negative_noted:
            self._note_negative_time()
        packets = [packet]
        bsf = self._bsfs.get(packet.stream_index)
        if bsf is not None:
            time_base = packet.time_base
            packets = bsf.filter(packet)
            for filtered in packets:
                filtered.time_base = time_base
        try:
            for item in packets:
                if self._copied_dts.keep(item, out):
                    self.note(
                        f"stream #{out.index}: repeated or backward timestamps were moved forward by a tick, "
                        f"as {self.kind.ext} requires"
                    )
                item.stream = out
                if self._chunked is not None:
                    self._chunked.hold(item)  # until the chunks' video has caught up with it
                else:
                    self.container.mux_one(item)
        except av.FFmpegError as error:
            raise self._on_write_error(
                error, f"copying a packet of stream #{out.index}", self.frames_written
            ) from None

    def _with_durations(self, packets: list[av.Packet]) -> list[av.Packet]:
        """``packets`` from the encoder, each given its frame's duration (in the packet's time base)."""
        for packet in packets:
            if packet.pts is None:
                continue
            time_base = Fraction(packet.time_base) if packet.time_base else self.spec.time_base
            exact = Fraction(packet.pts) * time_base / self.spec.time_base
            duration = self._durations.pop(round(exact), 0)
            if duration > 0 and not packet.duration:
                packet.duration = round(Fraction(duration) * self.spec.time_base / time_base)
        if len(self._durations) > _MAX_WAITING_DURATIONS:  # frames an encoder dropped: never claimed
            for pts in sorted(self._durations)[: -_MAX_WAITING_DURATIONS // 2]:
                del self._durations[pts]
        return packets

    def output_pts(self, frame: Frame) -> int:
        """``frame``'s pts in the output's time base (rounded, with a note, if it must be)."""
        if frame.time_base == self.spec.time_base:
            return frame.pts
        exact = Fraction(frame.pts) * frame.time_base / self.spec.time_base
        if exact.denominator != 1 and not self._rounded_pts:
            self._rounded_pts = True
            self.note(
                f"frame timestamps in {frame.time_base} are rounded to the output time base {self.spec.time_base}"
            )
        return round(exact)

    def _note_negative_time(self) -> None:
        # Audio encoders' priming samples sit before time 0 (AAC: 1024 samples). MP4 keeps them
        # there with an edit list. The Matroska and MPEG-TS muxers may instead shift every stream
        # by the same amount (whether they do depends on the packets' dts), keeping sync but not
        # the absolute times.
        self._negative_noted = True
        if self.kind.format not in ("mp4", "mov"):
            self.note(
                f"the input has timestamps before 0 (encoder delay); {self.kind.ext} may shift all "
                "streams by that small amount to store them (sync is kept; .mp4 keeps the times)"
            )

    def _video_frame(self, frame: Frame) -> av.VideoFrame:
        layout = pixel_layout(frame.pix_fmt)
        target = self._out_layout
        same = (layout.family, layout.bits, layout.chroma_w, layout.chroma_h) == (
            target.family, target.bits, target.chroma_w, target.chroma_h,
        )  # fmt: skip
        if same:
            out = av.VideoFrame(frame.width, frame.height, self.spec.encoder_pix_fmt)
            copy_planes_into(out, target, frame.planes)
            return out
        # A frame in another layout than the encoder's: correct but slow (swscale on this thread).
        if not self._slow_path_logged:
            self._slow_path_logged = True
            log.warning(
                "frames arrive as %s but %s is encoded: converting on the host",
                frame.pix_fmt,
                self.spec.encoder_pix_fmt,
            )
        source = av.VideoFrame(frame.width, frame.height, frame.pix_fmt)
        copy_planes_into(source, layout, frame.planes)
        return source.reformat(format=self.spec.encoder_pix_fmt)

    # -- finishing ------------------------------------------------------------------------------

    def finish(self) -> None:
        """Flush the encoder and close the container (trailer, playlist end, RTSP TEARDOWN)."""
        try:
            if self._chunked is not None:
                self._chunked.finish()
            else:
                self.container.mux(self._with_durations(self._video.encode(None)))
            self.container.close()
        except OutputError:
            self.close_quietly()  # a chunk failed: what was muxed before it stays playable
            raise
        except av.FFmpegError as error:
            self.close_quietly()
            raise self._on_write_error(error, "finishing the output", self.frames_written) from None

    def finish_after_failure(self) -> None:
        """Finish what can be finished after a failure or interrupt, raising nothing."""
        if self._chunked is not None:
            self._chunked.abort()
            self.frames_written = self._chunked.frames_muxed  # from here on: what the file holds
        else:
            try:
                self.container.mux(self._with_durations(self._video.encode(None)))
            except (av.FFmpegError, ValueError) as error:
                log.warning("flushing the encoder after a failure failed too: %s", ffmpeg_reason(error))
        self.close_quietly()

    def close_quietly(self) -> None:
        try:
            self.container.close()
        except (av.FFmpegError, ValueError, OSError) as error:
            log.warning("closing %s failed: %s", self.name, ffmpeg_reason(error))

    def note(self, text: str) -> None:
        # notes reach the user through the run summary; the log has them for library users
        self.notes.append(text)
        log.info("%s: %s", self.name, text)
