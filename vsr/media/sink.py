"""`FileSink`: encode `Frame`s, mux them with the copied audio/subtitle packets, finish atomically.

The output is written under a temporary name beside the requested one (``out.partial.mp4``) in
a form that is playable at any moment (fragmented MP4/MOV, Matroska, MPEG-TS), and renamed to
the requested name only when complete. A crash leaves the partial file; nothing half-written
ever sits at the requested path.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Self

import av
import av.stream
from av.bitstream import BitStreamFilterContext

from vsr.errors import ConfigError, OutputError
from vsr.media.containers import (
    check_output_path,
    container_for,
    incompatible_streams,
    movie_timescale,
    partial_path,
)
from vsr.media.encoders import choose_output_pix_fmt, encoder_options, encoder_profile
from vsr.media.ffmpeg_errors import ffmpeg_reason
from vsr.media.frame import Frame, pixel_layout
from vsr.media.output_spec import VideoOutputSpec
from vsr.media.planes import copy_planes_into

__all__ = ["FileSink", "VideoOutputSpec", "choose_output_pix_fmt", "incompatible_streams"]

log = logging.getLogger(__name__)

# Stream tags worth keeping on copied streams (the muxer writes its own statistics tags).
_KEPT_TAGS = ("language", "title", "handler_name")


class FileSink:
    """Writes one output file; use as a context manager or call `close` (or `abort`) once.

    ``passthrough`` are input streams (from `FileSource.passthrough`) whose packets will be given
    to `write_packet`. ``source_path`` lets the sink refuse to overwrite its own input when the
    input has no passthrough stream to tell it.
    """

    def __init__(
        self,
        path: str | Path,
        spec: VideoOutputSpec,
        passthrough: Sequence[av.stream.Stream] = (),
        *,
        source_path: str | Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.spec = spec
        self._kind = container_for(self.path)
        profile = encoder_profile(spec.codec)
        inputs = [Path(s.container.name) for s in passthrough]
        check_output_path(self.path, inputs + ([Path(source_path)] if source_path else []))
        problems = incompatible_streams(self._kind.ext, passthrough)
        if problems:
            raise ConfigError(f"{self._kind.ext} cannot carry {'; '.join(problems)}")
        self.partial_path = partial_path(self.path)
        self.notes: list[str] = []
        self.frames_written = 0
        self._last_pts: int | None = None
        self._rounded_pts = False
        self._negative_noted = False
        self._slow_path_logged = False
        self._closed = False
        self._out_layout = pixel_layout(spec.encoder_pix_fmt)
        self._bsfs: dict[int, BitStreamFilterContext] = {}
        options = dict(self._kind.options)
        if self._kind.format in ("mp4", "mov"):
            options["movie_timescale"] = str(movie_timescale(spec.time_base, passthrough))
        try:
            self._container = av.open(
                str(self.partial_path), "w", format=self._kind.format, container_options=options
            )
        except av.FFmpegError as error:
            raise OutputError(f"cannot create {self.partial_path}: {ffmpeg_reason(error)}") from None
        try:
            self._video = self._add_video()
            self._streams = self._add_passthrough(passthrough)
            self._start(profile.name)
        except BaseException:
            self._discard()
            raise

    # -- setup ----------------------------------------------------------------------------------

    def _add_video(self) -> av.video.stream.VideoStream:
        spec, kind = self.spec, self._kind
        stream = self._container.add_stream(
            spec.codec, rate=spec.frame_rate, options=encoder_options(spec), time_base=spec.time_base
        )
        context = stream.codec_context
        context.width, context.height = spec.width, spec.height
        context.pix_fmt = spec.encoder_pix_fmt
        context.thread_count = spec.threads
        # The encoder works in the frames' own time base, so pts pass through unchanged (VFR
        # stays VFR, a start offset stays); the muxer rescales to its own unit if it has one.
        context.time_base = spec.time_base
        stream.time_base = spec.time_base
        color = spec.tagged_color
        context.colorspace = int(color.matrix)
        context.color_range = int(color.range)
        context.color_primaries = color.primaries
        context.color_trc = color.transfer
        if spec.sample_aspect_ratio:
            context.sample_aspect_ratio = spec.sample_aspect_ratio
        if spec.rotation:
            if kind.rotation:
                stream.set_display_rotation(spec.rotation)
            else:
                self._note(
                    f"{kind.ext} cannot store a rotation; the {spec.rotation:g} degree rotation is lost"
                )
        # containers with a fixed clock (Matroska: ms) round timestamps that fall between ticks;
        # write_frame counts the ones that do and close() says so
        self._tick = (
            kind.tick if kind.tick is not None and (spec.time_base / kind.tick).denominator != 1 else None
        )
        self._rounded = 0
        return stream

    def _add_passthrough(self, streams: Sequence[av.stream.Stream]) -> dict[int, av.stream.Stream]:
        mapping = {}
        for source in streams:
            if source.type == "attachment" and not self._kind.attachments:
                self._note(
                    f"attachment {source.metadata.get('filename', source.index)} is not copied to {self._kind.ext}"
                )
                continue
            out = self._container.add_stream_from_template(source)
            for key in _KEPT_TAGS:
                if key in source.metadata:
                    out.metadata[key] = source.metadata[key]
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
            self._kind.format != "mpegts"
            and context is not None
            and context.codec.canonical_name == "aac"
            and not context.extradata
        )

    def _start(self, codec: str) -> None:
        spec = self.spec
        try:
            # Opened here, before the header, so a refusal is the encoder's and says so.
            self._video.codec_context.open()
        except (av.FFmpegError, ValueError) as error:
            hint = (
                " (NVENC needs an NVIDIA GPU that has a video encoder, and its driver; "
                "use libx264, libx265 or libsvtav1 otherwise)"
                if encoder_profile(codec).hardware
                else ""
            )
            raise OutputError(
                f"{codec} refused to encode {spec.width}x{spec.height} {spec.encoder_pix_fmt}: "
                f"{ffmpeg_reason(error)}{hint}"
            ) from None
        try:
            self._container.start_encoding()
        except (av.FFmpegError, ValueError) as error:
            raise OutputError(f"cannot start writing {self.partial_path}: {ffmpeg_reason(error)}") from None

    # -- writing --------------------------------------------------------------------------------

    def write_frame(self, frame: Frame) -> None:
        """Encode one frame; its pts (in ``frame.time_base``) must increase from frame to frame."""
        self._check_open()
        spec = self.spec
        if (frame.width, frame.height) != (spec.width, spec.height):
            raise ValueError(
                f"frame {frame.index} is {frame.width}x{frame.height}, the output is {spec.width}x{spec.height}"
            )
        pts = self._output_pts(frame)
        if pts < 0 and not self._negative_noted:
            self._note_negative_time()
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(
                f"frame {frame.index} has pts {pts}, not after the previous frame's {self._last_pts}"
            )
        video_frame = self._video_frame(frame)
        video_frame.pts = pts
        video_frame.time_base = spec.time_base
        color = spec.tagged_color
        video_frame.colorspace = int(color.matrix)
        video_frame.color_range = int(color.range)
        try:
            self._container.mux(self._video.encode(video_frame))
        except av.FFmpegError as error:
            raise self._write_failed(error, f"encoding frame {frame.index}") from None
        self._last_pts = pts
        self.frames_written += 1
        if self._tick is not None and (pts * spec.time_base / self._tick).denominator != 1:
            self._rounded += 1

    def write_packet(self, packet: av.Packet) -> None:
        """Mux a packet demuxed from one of the passthrough streams, byte for byte."""
        self._check_open()
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
                item.stream = out
                self._container.mux_one(item)
        except av.FFmpegError as error:
            raise self._write_failed(error, f"copying a packet of stream #{out.index}") from None

    def _note_negative_time(self) -> None:
        # Audio encoders' priming samples sit before time 0 (AAC: 1024 samples). MP4 keeps them
        # there with an edit list. The Matroska and MPEG-TS muxers may instead shift every stream
        # by the same amount (whether they do depends on the packets' dts), keeping sync but not
        # the absolute times.
        self._negative_noted = True
        if self._kind.format not in ("mp4", "mov"):
            self._note(
                f"the input has timestamps before 0 (encoder delay); {self._kind.ext} may shift all "
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

    def _output_pts(self, frame: Frame) -> int:
        if frame.time_base == self.spec.time_base:
            return frame.pts
        exact = Fraction(frame.pts) * frame.time_base / self.spec.time_base
        if exact.denominator != 1 and not self._rounded_pts:
            self._rounded_pts = True
            self._note(
                f"frame timestamps in {frame.time_base} are rounded to the output time base {self.spec.time_base}"
            )
        return round(exact)

    # -- finishing ------------------------------------------------------------------------------

    def close(self) -> Path:
        """Flush the encoder, finish the file and move it to the requested path; return that path."""
        self._check_open()
        self._closed = True
        if self._rounded:
            self._note(
                f"{self._rounded} of {self.frames_written} timestamps fall between {self.path.suffix}'s "
                f"{self._tick} s ticks and were rounded (use .mp4 or .mov to keep them exact)"
            )
        try:
            self._container.mux(self._video.encode(None))
            self._container.close()
        except av.FFmpegError as error:
            self._close_quietly()
            raise self._write_failed(error, "finishing the file") from None
        if self.frames_written == 0:
            self.partial_path.unlink(missing_ok=True)
            raise OutputError(f"no video frame was written; {self.path} was not created")
        try:
            os.replace(self.partial_path, self.path)
        except OSError as error:
            raise OutputError(
                f"cannot move {self.partial_path} to {self.path}: {error.strerror}; the output is kept "
                f"under the temporary name"
            ) from None
        return self.path

    def abort(self) -> Path | None:
        """After a failure or interrupt: finish what can be finished and keep the partial file.

        Returns the partial file's path, or None when no video frame was written (then the file
        is deleted: it would hold nothing to watch).
        """
        if self._closed:
            return self.partial_path if self.partial_path.exists() else None
        self._closed = True
        try:
            self._container.mux(self._video.encode(None))
        except (av.FFmpegError, ValueError) as error:
            log.warning("flushing the encoder after a failure failed too: %s", ffmpeg_reason(error))
        self._close_quietly()
        if self.frames_written == 0:
            self.partial_path.unlink(missing_ok=True)
            return None
        return self.partial_path if self.partial_path.exists() else None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- helpers --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"FileSink for {self.path} is already closed")

    def _note(self, text: str) -> None:
        # notes reach the user through the run summary; the log has them for library users
        self.notes.append(text)
        log.info("%s: %s", self.path.name, text)

    def _close_quietly(self) -> None:
        try:
            self._container.close()
        except (av.FFmpegError, ValueError, OSError) as error:
            log.warning("closing %s failed: %s", self.partial_path, ffmpeg_reason(error))

    def _discard(self) -> None:
        self._closed = True
        self._close_quietly()
        self.partial_path.unlink(missing_ok=True)

    def _write_failed(self, error: BaseException, doing: str) -> OutputError:
        if getattr(error, "errno", None) == errno.ENOSPC:
            return OutputError(
                f"disk full while writing {self.partial_path} after {self.frames_written} frames; free space and run again"
            )
        return OutputError(
            f"writing {self.partial_path} failed while {doing} (after {self.frames_written} frames): "
            f"{ffmpeg_reason(error)}"
        )
