"""`VideoInfo`: what a Source knows about its video before the first frame is handed out."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from vsr.media.color import ColorDescription
from vsr.media.hdr import HdrMetadata
from vsr.media.tags import FileTags

__all__ = ["VideoInfo", "color_of", "duration_of", "frame_count_of"]


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoInfo:
    """The video stream of an input, as the Source will deliver it.

    ``pix_fmt`` and ``time_base`` are those of the `Frame`s the Source yields (after any format
    conversion or timestamp synthesis); ``decoded_pix_fmt`` is what the decoder produced.
    ``frame_count`` is exact when the container says so, else estimated from the duration
    (``frame_count_estimated``) or None. ``notes`` are things the user should be told.
    """

    path: Path | str  # a URL or a device for live sources
    container_format: str
    codec: str
    width: int
    height: int
    pix_fmt: str
    decoded_pix_fmt: str
    time_base: Fraction
    average_rate: Fraction | None
    frame_count: int | None
    frame_count_estimated: bool
    duration: float | None
    color: ColorDescription
    rotation: float
    interlaced: bool
    deinterlaced: bool
    sample_aspect_ratio: Fraction | None
    start_pts: int
    bits: int
    timestamps_synthesized: bool
    stream_index: int
    notes: tuple[str, ...] = ()
    tags: FileTags = field(default_factory=FileTags)  # container metadata, chapters, stream tags
    hdr: HdrMetadata | None = None  # HDR10 static metadata of the first frame

    @property
    def start_time(self) -> float:
        return float(self.start_pts * self.time_base)


def _tag_seconds(text: str) -> float | None:
    # Matroska's per-track DURATION tag: "HH:MM:SS.nnnnnnnnn".
    try:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def duration_of(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """Seconds of the video: the stream's own duration, its Matroska DURATION tag, else the
    container's (which also covers audio that may run longer)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tagged = _tag_seconds(stream.metadata.get("DURATION", ""))
    if tagged:
        return tagged
    if container.duration:
        return container.duration / av.time_base
    return None


def frame_count_of(
    stream: av.video.stream.VideoStream, duration: float | None, rate: Fraction | None
) -> tuple[int | None, bool]:
    """(count, estimated): the container's sample count, else duration x rate, else unknown.

    An MP4 cut without re-encoding (``ffmpeg -ss 1.3 -i in.mp4 -c copy``) keeps the samples from
    the keyframe before the cut, and an edit list hides them: its sample count is then far above
    what its (edited) duration holds at its rate, and the duration x rate is the better count.
    """
    timed = round(duration * rate) if duration and rate else None
    if stream.frames and not (timed is not None and stream.frames > max(timed + 2, 1.2 * timed)):
        return stream.frames, False
    if timed is not None:
        return timed, True
    return None, True


def color_of(frame: av.VideoFrame, context: av.codec.context.CodecContext) -> ColorDescription:
    """The colour tags of the first frame, filled from the stream where the bitstream is silent.

    Containers (MP4 ``colr``, Matroska ``Colour``) can tag colour that the bitstream does not
    repeat; the decoder context has those, the frame has what the bitstream says.
    """

    def pick(frame_value: int, context_value: int, unspecified: int) -> int:
        return frame_value if frame_value != unspecified else context_value

    return ColorDescription.from_values(
        pick(frame.colorspace, context.colorspace, 2),
        pick(frame.color_range, context.color_range, 0),
        pick(frame.color_primaries, context.color_primaries, 2),
        pick(frame.color_trc, context.color_trc, 2),
    )
