"""`FileSource`: demux a file once, decode its video into `Frame`s, hand other streams on untouched.

The first video frame is decoded when the source opens, because several facts the rest of the
run depends on are only known from a decoded frame: the pixel format, whether the input has
timestamps at all, whether it is interlaced, its rotation and its colour tags. What was read to
get there is kept and replayed by `items`, so nothing is demuxed twice.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import av
import av.container
import av.stream

from vsr.errors import ConfigError, InputError
from vsr.media.deinterlace import Deinterlacer
from vsr.media.demux import VideoDemuxer
from vsr.media.ffmpeg_errors import ffmpeg_reason
from vsr.media.formats import format_traits, nearest_format
from vsr.media.frame import PIXEL_FORMATS, Frame, pixel_layout
from vsr.media.hdr import hdr_of
from vsr.media.info import VideoInfo, color_of, duration_of, frame_count_of
from vsr.media.input_file import codec_name, describe_streams, open_input
from vsr.media.planes import plane_views
from vsr.media.side_data import UncarriedSideData
from vsr.media.tags import read_file_tags, tracks_carried_as_tags
from vsr.media.timestamps import GapWatch, PtsClock

__all__ = ["DeinterlaceMode", "FileSource", "VideoInfo"]

log = logging.getLogger(__name__)

DeinterlaceMode = Literal["auto", "on", "off"]
_FALLBACK_RATE = Fraction(25)
_PASSTHROUGH_TYPES = ("audio", "subtitle", "attachment")


class FileSource:
    """Frames and passthrough packets of one input file, in demux order.

    ``deinterlace``: "auto" deinterlaces frames flagged interlaced, "on" every frame, "off" none
    (fields pass through as they are). ``threads``: decoder threads, 0 lets FFmpeg choose.
    """

    def __init__(self, path: str | Path, *, deinterlace: DeinterlaceMode = "auto", threads: int = 0) -> None:
        if deinterlace not in ("auto", "on", "off"):
            raise ConfigError(f"deinterlace must be auto, on or off, got {deinterlace!r}")
        self.path = Path(path)
        self._container = open_input(self.path)
        self._deinterlace_mode = deinterlace
        self._deinterlacer: Deinterlacer | None = None
        self._runtime_notes: list[str] = []
        self._uncarried = UncarriedSideData()
        self._frames_out = 0
        self._last_pts: int | None = None
        self._last_step = 0
        self._started = False
        self._closed = False
        self._resize_noted = False
        self._time_base = Fraction(1)
        try:
            self._open(threads)
        except BaseException:
            self._container.close()
            raise

    # -- public ---------------------------------------------------------------------------------

    @property
    def info(self) -> VideoInfo:
        return self._info

    @property
    def passthrough(self) -> tuple[av.stream.Stream, ...]:
        """Audio, subtitle and attachment streams to copy into the output untouched."""
        return self._passthrough

    @property
    def notes(self) -> tuple[str, ...]:
        """`VideoInfo.notes` plus what was learnt while decoding (repairs, truncation)."""
        return self._info.notes + tuple(self._runtime_notes)

    @property
    def pts_repairs(self) -> int:
        """How many timestamps were missing, repeated or went backwards and were repaired."""
        return self._clock.repairs

    @property
    def frames_read(self) -> int:
        return self._frames_out

    @property
    def container(self) -> av.container.InputContainer:
        """The open input container, for describing it; `items` is the only reader of packets."""
        return self._container

    def run_notes(self) -> list[str]:
        """What was learnt while decoding (repairs, truncation), without the `VideoInfo` notes."""
        return list(self._runtime_notes)

    def items(self) -> Iterator[Frame | av.Packet]:
        """Video `Frame`s (index 0..N-1, presentation order) and passthrough packets, demux order."""
        if self._started:
            raise RuntimeError("FileSource.items() can be iterated only once (the input is demuxed once)")
        self._started = True
        while self._pending:
            yield from self._emit(self._pending.popleft())
        for item in self._raw:
            yield from self._emit(item)
        yield from self._finish()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._raw.close()
        self._container.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- opening --------------------------------------------------------------------------------

    def _open(self, threads: int) -> None:
        container = self._container
        notes: list[str] = []
        videos = [
            s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
        ]
        if not videos:
            raise InputError(
                f"input has no video stream: {self.path} (streams: {describe_streams(container)})"
            )
        video = videos[0]
        if video.codec_context is None:
            raise InputError(
                f"this FFmpeg build has no decoder for the video of {self.path} (stream "
                f"#{video.index}, {codec_name(video)}); convert it to H.264/HEVC/AV1 first"
            )
        video.thread_type = "AUTO"
        video.codec_context.thread_count = threads
        self._video = video
        self._passthrough = self._select_passthrough(notes)

        self._demuxer = VideoDemuxer(container, video, self._passthrough, self._corrupt)
        self._raw = self._demuxer.run()
        self._pending: deque[av.VideoFrame | av.Packet] = deque()
        first = None
        for item in self._raw:
            self._pending.append(item)
            if isinstance(item, av.VideoFrame):
                first = item
                break
        if first is None:
            failure = self._demuxer.tail_failure
            tail = f" ({failure})" if failure else ""
            raise InputError(f"input has no decodable video frame: {self.path}{tail}")
        self._info = self._describe(first, notes)

    def _select_passthrough(self, notes: list[str]) -> tuple[av.stream.Stream, ...]:
        chosen = []
        carried = tracks_carried_as_tags(self._container, self._video)
        for stream in self._container.streams:
            if stream is self._video or stream in carried:
                continue
            label = f"{stream.type} stream #{stream.index} ({codec_name(stream)}) is not copied"
            if stream.type == "video" and stream.disposition & av.stream.Disposition.attached_pic:
                notes.append(f"{label}: it is cover art (an attached picture)")
            elif stream.type == "video":
                notes.append(f"{label}: only one video stream is processed, #{self._video.index}")
            elif stream.type not in _PASSTHROUGH_TYPES:
                notes.append(f"{label}: vsr copies audio, subtitle and attachment streams")
            elif stream.codec_context is None and stream.type != "attachment":
                notes.append(f"{label}: this FFmpeg build does not know its codec")
            else:
                chosen.append(stream)
        return tuple(chosen)

    def _describe(self, first: av.VideoFrame, notes: list[str]) -> VideoInfo:
        video = self._video
        context = video.codec_context
        rate = video.average_rate or video.guessed_rate or None
        synthesize = first.pts is None
        if synthesize:
            used = rate or _FALLBACK_RATE
            time_base = 1 / Fraction(used)
            how = "the stream's nominal" if rate else "assuming"
            notes.append(f"no timestamps in input; {how} {float(used):g} fps")
        else:
            time_base = Fraction(video.time_base)
        self._clock = PtsClock(synthesize=synthesize)
        self._gaps = GapWatch(time_base)
        self._time_base = time_base

        decoded_fmt = first.format.name
        pix_fmt = decoded_fmt if decoded_fmt in PIXEL_FORMATS else nearest_format(decoded_fmt, PIXEL_FORMATS)
        if pix_fmt != decoded_fmt:
            notes.append(f"decoded pixel format {decoded_fmt} is converted to {pix_fmt}")
        self._pix_fmt = pix_fmt
        self._layout = pixel_layout(pix_fmt)
        self._size = (first.width, first.height)
        self._color = color_of(first, context)

        interlaced = bool(first.interlaced_frame)
        mode = self._deinterlace_mode
        deinterlaced = mode == "on" or (mode == "auto" and interlaced)
        if mode == "on":
            notes.append("deinterlacing every frame with bwdif (deinterlace=on)")
        elif deinterlaced:
            notes.append(
                "input is interlaced; deinterlacing with bwdif (one frame per frame, same timestamps)"
            )
        elif interlaced:
            notes.append("input is interlaced; fields are passed through as they are (deinterlace=off)")
        if deinterlaced:
            self._deinterlacer = Deinterlacer(first, time_base, all_frames=mode == "on")

        duration = duration_of(self._container, video)
        count, estimated = frame_count_of(video, duration, rate)
        sar = video.sample_aspect_ratio
        return VideoInfo(
            path=self.path,
            container_format=self._container.format.name,
            codec=codec_name(video),
            width=first.width,
            height=first.height,
            pix_fmt=pix_fmt,
            decoded_pix_fmt=decoded_fmt,
            time_base=time_base,
            average_rate=Fraction(rate) if rate else None,
            frame_count=count,
            frame_count_estimated=estimated,
            duration=duration,
            color=self._color,
            rotation=float(first.rotation),
            interlaced=interlaced,
            deinterlaced=deinterlaced,
            sample_aspect_ratio=Fraction(sar) if sar else None,
            start_pts=0 if synthesize else int(first.pts),
            bits=format_traits(pix_fmt).bits,
            timestamps_synthesized=synthesize,
            stream_index=video.index,
            notes=tuple(notes),
            tags=read_file_tags(self._container, video),
            hdr=hdr_of(first),
        )

    def _corrupt(self, error: BaseException) -> InputError:
        seconds = float((self._last_pts or 0) * self._time_base)
        return InputError(
            f"input is truncated or corrupt after frame {self._frames_out} (t={seconds:.3f} s): "
            f"{ffmpeg_reason(error)}"
        )

    # -- frames ---------------------------------------------------------------------------------

    def _emit(self, item: av.VideoFrame | av.Packet) -> Iterator[Frame | av.Packet]:
        if not isinstance(item, av.VideoFrame):
            yield item
            return
        pts = self._clock.next(item.pts)
        if self._deinterlacer is None and self._deinterlace_mode == "auto" and item.interlaced_frame:
            # Mixed content: progressive at the start, interlaced later (broadcast recordings).
            self._deinterlacer = Deinterlacer(item, self._time_base, all_frames=False)
            self._note(f"interlaced frames start at frame {self._frames_out}; deinterlacing from there")
        if self._deinterlacer is None:
            yield self._frame(item, pts, item.key_frame)
            return
        try:
            out = self._deinterlacer.push(item, pts)
        except av.FFmpegError as error:
            raise self._deinterlace_failed(error) from None
        for frame, out_pts, key in out:
            yield self._frame(frame, out_pts, key)

    def _finish(self) -> Iterator[Frame]:
        if self._deinterlacer is not None:
            try:
                out = self._deinterlacer.flush()
            except av.FFmpegError as error:
                raise self._deinterlace_failed(error) from None
            for frame, pts, key in out:
                yield self._frame(frame, pts, key)
        if self._gaps.jumps > 1:
            self._note(
                f"the input has no frames at {self._gaps.jumps} places where its steady rate says it would"
            )
        if self._clock.repairs:
            self._note(
                f"repaired {self._clock.repairs} timestamps that were missing, repeated or went backwards"
            )
        if self._demuxer.tail_failure:
            self._note(self._demuxer.tail_failure)
        if self._demuxer.tail_dropped:
            self._note("the last video packet is cut short (truncated file) and was dropped")
        info = self._info
        if info.frame_count and not info.frame_count_estimated and self._frames_out < info.frame_count:
            self._note(
                f"input ended after {self._frames_out} of {info.frame_count} frames; it is probably truncated"
            )
        elif info.duration and self._last_pts is not None:
            covered = float((self._last_pts - info.start_pts + self._last_step) * info.time_base)
            if info.duration - covered > max(1.0, 0.1 * info.duration):
                self._note(
                    f"input ended at {covered:.2f} s of the {info.duration:.2f} s its header states; "
                    "it is probably truncated"
                )

    def _frame(self, frame: av.VideoFrame, pts: int, key: bool) -> Frame:
        width, height = self._size
        for text in self._uncarried.check(frame, self._frames_out):
            self._note(text)
        gap = self._gaps.next(pts)
        if gap is not None:
            self._note(gap)
        if frame.format.name != self._pix_fmt or (frame.width, frame.height) != self._size:
            if (frame.width, frame.height) != self._size and not self._resize_noted:
                self._resize_noted = True
                self._note(
                    f"the video size changes at frame {self._frames_out} ({frame.width}x{frame.height}); "
                    f"such frames are scaled to {width}x{height}"
                )
            frame = frame.reformat(width=width, height=height, format=self._pix_fmt)
        if self._last_pts is not None:
            self._last_step = pts - self._last_pts
        self._last_pts = pts
        out = Frame(
            index=self._frames_out,
            pts=pts,
            time_base=self._time_base,
            pix_fmt=self._pix_fmt,
            width=width,
            height=height,
            planes=plane_views(frame, self._layout),
            color=self._color,
            key_frame=bool(key),
            duration=self._duration_of(frame),
            produced_at=time.monotonic(),
        )
        self._frames_out += 1
        return out

    def _duration_of(self, frame: av.VideoFrame) -> int:
        """``frame``'s duration in the Frame's time base, or 0 when the decoder does not know it."""
        if self._info.timestamps_synthesized:
            return 1  # one tick of 1/rate, as the synthesized pts step
        duration = frame.duration
        if not duration or duration < 0 or frame.time_base is None:
            return 0
        exact = Fraction(duration) * Fraction(frame.time_base) / self._time_base
        return int(exact) if exact.denominator == 1 else 0

    def _note(self, text: str) -> None:
        self._runtime_notes.append(text)
        log.warning("%s: %s", self.path.name, text)

    def _deinterlace_failed(self, error: BaseException) -> InputError:
        return InputError(
            f"deinterlacing failed at frame {self._frames_out} of {self.path}: {ffmpeg_reason(error)}; "
            "run with deinterlace off"
        )
