"""`probe`: what is in a media file, for ``vsr probe FILE`` and for planning a run."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.stream

from vsr.media.info import VideoInfo
from vsr.media.input_file import codec_name
from vsr.media.source import FileSource
from vsr.media.tags import Chapter, tracks_carried_as_tags

__all__ = ["MediaInfo", "StreamInfo", "probe"]

_CHAPTERS_SHOWN = 5  # the rest are counted


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamInfo:
    """One stream of the file, whatever its type, with the parameters that matter for it."""

    index: int
    type: str
    codec: str
    language: str | None
    title: str | None
    default: bool
    details: str  # "1280x720 yuv420p 25 fps", "48000 Hz 5.1 fltp", "font.ttf" ...
    bit_rate: int | None
    duration: float | None

    def describe(self) -> str:
        parts = [f"#{self.index} {self.type:<10} {self.codec}"]
        if self.details:
            parts.append(self.details)
        if self.language and self.language != "und":
            parts.append(f"[{self.language}]")
        if self.title:
            parts.append(f'"{self.title}"')
        if self.bit_rate:
            parts.append(f"{self.bit_rate // 1000} kb/s")
        if self.default:
            parts.append("(default)")
        return " ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaInfo:
    """The video as the Source will deliver it, plus every stream in the file."""

    video: VideoInfo
    streams: tuple[StreamInfo, ...]
    size_bytes: int
    bit_rate: int | None

    def describe(self) -> list[str]:
        v = self.video
        rate = (
            f"{float(v.average_rate):.3f}".rstrip("0").rstrip(".") + " fps"
            if v.average_rate
            else "unknown rate"
        )
        count = (
            "unknown" if v.frame_count is None else f"{'~' if v.frame_count_estimated else ''}{v.frame_count}"
        )
        duration = "unknown" if v.duration is None else f"{v.duration:.3f} s"
        lines = [
            f"file:      {v.path} ({v.container_format}, {self.size_bytes / 1e6:.1f} MB"
            + (f", {self.bit_rate // 1000} kb/s)" if self.bit_rate else ")"),
            f"video:     {v.codec} {v.width}x{v.height} {v.pix_fmt} ({v.bits}-bit), {rate}, "
            f"{count} frames, {duration}",
            f"timing:    time base {v.time_base}, first pts {v.start_pts} ({v.start_time:.3f} s)"
            + (", timestamps synthesized" if v.timestamps_synthesized else ""),
            f"colour:    {v.color.describe()}",
        ]
        if v.hdr is not None:
            lines.append(f"hdr10:     {v.hdr.describe()}")
        extras = []
        if v.rotation:
            extras.append(f"rotation {v.rotation:g} degrees")
        if v.sample_aspect_ratio and v.sample_aspect_ratio != 1:
            extras.append(f"sample aspect ratio {v.sample_aspect_ratio}")
        if v.interlaced:
            extras.append("interlaced" + (" (will be deinterlaced)" if v.deinterlaced else ""))
        if extras:
            lines.append(f"geometry:  {', '.join(extras)}")
        lines += [f"stream:    {s.describe()}" for s in self.streams]
        if v.tags.metadata:
            lines.append(f"tags:      {', '.join(key for key, _ in v.tags.metadata)}")
        if v.tags.chapters:
            shown = [_chapter_label(c) for c in v.tags.chapters[:_CHAPTERS_SHOWN]]
            more = len(v.tags.chapters) - len(shown)
            lines.append(
                f"chapters:  {len(v.tags.chapters)}: {', '.join(shown)}"
                + (f", ... ({more} more)" if more else "")
            )
        lines += [f"note:      {n}" for n in v.notes]
        return lines


def _chapter_label(chapter: Chapter) -> str:
    title = dict(chapter.metadata).get("title")
    start = f"{float(chapter.start * chapter.time_base):.3f} s"
    return f'{start} "{title}"' if title else start


def _details(stream: av.stream.Stream) -> str:
    context = stream.codec_context
    if stream.type == "attachment":
        return " ".join(str(stream.metadata.get(k, "")) for k in ("filename", "mimetype")).strip()
    if context is None:
        return ""
    if stream.type == "video":
        rate = stream.average_rate
        fps = f" {float(rate):.3f}".rstrip("0").rstrip(".") + " fps" if rate else ""
        return f"{context.width}x{context.height} {context.pix_fmt or '?'}{fps}"
    if stream.type == "audio":
        return f"{context.sample_rate} Hz {context.layout.name} {context.format.name if context.format else ''}".strip()
    return ""


def _stream_info(stream: av.stream.Stream, carried: dict[av.stream.Stream, str]) -> StreamInfo:
    duration = None
    if stream.duration and stream.time_base:
        duration = float(stream.duration * Fraction(stream.time_base))
    context = stream.codec_context
    return StreamInfo(
        index=stream.index,
        type=stream.type,
        codec=codec_name(stream),
        language=stream.metadata.get("language"),
        title=stream.metadata.get("title"),
        default=bool(stream.disposition & av.stream.Disposition.default),
        details=carried.get(stream) or _details(stream),
        bit_rate=(context.bit_rate or None) if context is not None else None,
        duration=duration,
    )


def probe(path: str | Path) -> MediaInfo:
    """Open ``path`` as the pipeline would (decoding one frame) and describe it; `InputError` if it
    cannot be used."""
    with FileSource(path) as source:
        container = source.container
        carried = tracks_carried_as_tags(container, container.streams[source.info.stream_index])
        return MediaInfo(
            video=source.info,
            streams=tuple(_stream_info(s, carried) for s in container.streams),
            size_bytes=Path(path).stat().st_size,
            bit_rate=container.bit_rate or None,
        )
