"""`FileTags`: what an input file says about itself, carried to the output as FFmpeg carries it.

The container's metadata (title, creation time, GPS location, comments), the video stream's own
tags, and the chapters. FFmpeg copies all three by default (``-map_metadata 0 -map_chapters 0``);
an upscaler that dropped them would lose a phone video's date and place and a film's chapters.

What is not copied: the tags each muxer writes for itself (the MP4 brands, ``encoder``), and
Matroska's per-track statistics, which describe the old encoding rather than the content.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import av.container
import av.stream

from vsr.media.containers import OutputContainerKind

__all__ = [
    "STREAM_TAGS",
    "Chapter",
    "FileTags",
    "needs_metadata_keys",
    "read_file_tags",
    "stream_tags",
    "tracks_carried_as_tags",
    "without_chapters",
    "write_file_tags",
]

# The per-stream tags an output stream keeps (audio, subtitles and the re-encoded video alike).
STREAM_TAGS = ("language", "title", "handler_name", "creation_time", "timecode")

# Container tags that describe the old file's muxing, not its content; compared in lower case
# (Matroska writes its tags in upper case).
_MUXER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})


@dataclass(frozen=True, slots=True)
class Chapter:
    start: int
    end: int
    time_base: Fraction
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class FileTags:
    """``metadata``: the container's tags; ``video``: the video stream's; ``chapters`` in order."""

    metadata: tuple[tuple[str, str], ...] = ()
    video: tuple[tuple[str, str], ...] = ()
    chapters: tuple[Chapter, ...] = ()


def needs_metadata_keys(tags: FileTags) -> bool:
    """Whether an MP4/MOV output must store its tags as QuickTime metadata keys (``mdta``).

    Phones write theirs that way, under reverse-DNS names: an iPhone's place
    (``com.apple.quicktime.location.ISO6709``), make, model and capture date, Android's capture
    rate of a slow-motion video (``com.android.capture.fps``). FFmpeg's MP4 muxer drops such keys
    unless told to write every tag as a key (``movflags use_metadata_tags``), which then replaces
    the iTunes-style tags: so only for an input that had such keys.
    """
    return any(key.startswith("com.") for key, _ in tags.metadata)


def stream_tags(stream: av.stream.Stream) -> tuple[tuple[str, str], ...]:
    """The tags of ``stream`` that its copy or re-encoding keeps (`STREAM_TAGS`)."""
    tags = dict(stream.metadata)
    if "title" not in tags and "name" in tags:  # MP4/MOV read a track's title back as "name"
        tags["title"] = tags["name"]
    return tuple((key, tags[key]) for key in STREAM_TAGS if key in tags)


def tracks_carried_as_tags(
    container: av.container.InputContainer, video: av.stream.Stream
) -> dict[av.stream.Stream, str]:
    """The data tracks of an MP4/MOV whose content reaches the output as tags, with what they hold.

    The text track that stores the chapters for QuickTime (FFmpeg reads the chapters out of it,
    and lists it as a data stream with one packet per chapter) and the timecode track (``tmcd``,
    which FFmpeg reads into the video stream's ``timecode`` tag). The output's muxer makes its
    own of each from the chapters and the tag.
    """
    if "mov" not in container.format.name.split(","):
        return {}
    chapters = len(container.chapters())
    timecode = video.metadata.get("timecode")
    carried = {}
    for stream in container.streams:
        if stream.type != "data":
            continue
        if timecode is not None and stream.metadata.get("timecode") == timecode:
            carried[stream] = "timecode"
        elif chapters and stream.frames == chapters:
            carried[stream] = "chapter titles"
    return carried


def read_file_tags(container: av.container.InputContainer, video: av.stream.Stream) -> FileTags:
    """The tags and chapters of an open input ``container`` whose video stream is ``video``."""
    metadata = tuple((k, v) for k, v in container.metadata.items() if k.lower() not in _MUXER_TAGS)
    chapters = tuple(
        Chapter(
            start=int(ch["start"]),
            end=int(ch["end"]),
            time_base=Fraction(ch["time_base"] or Fraction(1, 1_000_000)),
            metadata=tuple(ch["metadata"].items()),
        )
        for ch in container.chapters()
    )
    return FileTags(metadata=metadata, video=stream_tags(video), chapters=chapters)


def write_file_tags(
    container: av.container.OutputContainer,
    video: av.stream.Stream,
    tags: FileTags,
    kind: OutputContainerKind,
) -> str | None:
    """Give an output ``container`` of ``kind`` (before its header) and its ``video`` stream
    ``tags``; the note that says the chapters are dropped when ``kind`` cannot store them."""
    for key, value in tags.metadata:
        container.metadata[key] = value
    for key, value in tags.video:
        video.metadata[key] = value
    if not tags.chapters:
        return None
    if not kind.chapters:
        return f"{kind.ext} cannot store chapters; the input's {len(tags.chapters)} are not copied"
    container.set_chapters(
        [
            {
                "id": number,
                "start": chapter.start,
                "end": chapter.end,
                "time_base": chapter.time_base,
                "metadata": dict(chapter.metadata),
            }
            for number, chapter in enumerate(tags.chapters, start=1)
        ]
    )
    return None


def without_chapters(tags: FileTags) -> FileTags:
    """``tags`` for an output that holds only part of the input's time (a segment)."""
    return FileTags(metadata=tags.metadata, video=tags.video)
