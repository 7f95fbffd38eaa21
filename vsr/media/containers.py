"""Output containers: which ones vsr writes, how (crash-safe), and which streams each can carry."""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.stream

from vsr.errors import ConfigError, OutputError
from vsr.media.input_file import codec_name

__all__ = [
    "CONTAINERS",
    "RTSP_OUTPUT",
    "OutputContainerKind",
    "check_output_path",
    "container_for",
    "incompatible_streams",
    "movie_timescale",
    "partial_path",
]

log = logging.getLogger(__name__)

# Every container is written so that a crash or kill loses at most about a second:
# - flush_packets: hand each muxed packet to the OS at once; otherwise FFmpeg's I/O buffer (and the
#   muxers' own buffers) can hold the first hundreds of kilobytes, and a killed run leaves 0 bytes.
# - MP4/MOV are fragmented: playable up to the last finished fragment (frag_duration, 1 s).
#   delay_moov writes the moov after the first fragment, when the first timestamps are known:
#   without it the muxer cannot write an edit list and shifts every timestamp so that the first
#   *decode* time is zero (B-frame delay and start offsets would be lost).
# - Matroska keeps a whole cluster in memory until it is closed (5 s by default): 1 s clusters.
_FLUSH = {"flush_packets": "1"}
_FRAGMENTED = _FLUSH | {
    "movflags": "frag_keyframe+empty_moov+default_base_moof+delay_moov",
    "frag_duration": "1000000",
}
_MATROSKA = _FLUSH | {"cluster_time_limit": "1000"}

# The MPEG-TS muxer accepts any codec and writes what it does not know as private data that no
# demuxer reads back, so for TS the codecs are listed instead of asking the muxer.
_TS_CODECS = frozenset(
    {"mp1", "mp2", "mp3", "aac", "aac_latm", "ac3", "eac3", "dts", "truehd", "opus", "s302m"}
    | {"dvb_subtitle", "dvb_teletext", "arib_caption"}
)


@dataclass(frozen=True, slots=True)
class OutputContainerKind:
    ext: str
    format: str
    options: Mapping[str, str] = field(default_factory=dict)
    # The muxer's own timestamp unit, when it imposes one (None: it follows the encoder).
    tick: Fraction | None = None
    rotation: bool = True  # can store a display matrix
    attachments: bool = False
    chapters: bool = False  # can store the input's chapters
    # a playlist of segment files (HLS) rather than one file: written by HlsSink, not FileSink
    playlist: bool = False


# HLS (.m3u8): a playlist plus MPEG-TS segments; HlsSink sets the segmenting options.
# RTSP: a publish (ANNOUNCE/RECORD) to a server; RTP carries the video on a 90 kHz clock.
_RTP_CODECS = frozenset(
    {"aac", "opus", "mp2", "mp3", "ac3", "vorbis", "speex", "g722", "pcm_mulaw", "pcm_alaw"}
    | {"pcm_s16be", "amr_nb", "amr_wb", "adpcm_g726"}
)

CONTAINERS: dict[str, OutputContainerKind] = {
    ".mp4": OutputContainerKind(".mp4", "mp4", _FRAGMENTED, chapters=True),
    ".mov": OutputContainerKind(".mov", "mov", _FRAGMENTED, chapters=True),
    ".mkv": OutputContainerKind(
        ".mkv", "matroska", _MATROSKA, tick=Fraction(1, 1000), attachments=True, chapters=True
    ),
    ".ts": OutputContainerKind(".ts", "mpegts", _FLUSH, tick=Fraction(1, 90000), rotation=False),
    ".m3u8": OutputContainerKind(".m3u8", "hls", tick=Fraction(1, 90000), rotation=False, playlist=True),
}
RTSP_OUTPUT = OutputContainerKind("RTSP", "rtsp", tick=Fraction(1, 90000), rotation=False)


def container_for(path_or_ext: str | Path) -> OutputContainerKind:
    """The container for an output path (a `Path`, or a string with a dot: ``"out.mp4"``) or an
    extension (``".mkv"``, ``"ts"``)."""
    text = str(path_or_ext)
    if isinstance(path_or_ext, Path) or "." in text.lstrip("."):
        ext = Path(text).suffix.lower()  # "" for "out" and "out."
    else:
        ext = "." + text.lower().lstrip(".")
    try:
        return CONTAINERS[ext]
    except KeyError:
        supported = ", ".join(CONTAINERS)
        what = f"{ext} files" if ext else f"{Path(text).name}: it has no extension to name a format"
        raise ConfigError(f"cannot write {what}; use one of {supported}") from None


def partial_path(path: Path) -> Path:
    """Where an output is written until it is complete: ``out.mp4`` -> ``out.partial.mp4``."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def _stream_label(stream: av.stream.Stream) -> str:
    return f"{stream.type} stream #{stream.index} ({codec_name(stream)})"


def _can_carry(kind: OutputContainerKind, stream: av.stream.Stream) -> bool:
    if stream.type == "attachment":
        return kind.attachments
    if kind.format in ("mpegts", "hls"):
        return codec_name(stream) in _TS_CODECS
    if kind.format == "rtsp":
        return codec_name(stream) in _RTP_CODECS
    return _muxer_accepts(kind.format, stream)


def _muxer_accepts(format_name: str, stream: av.stream.Stream) -> bool:
    # Ask the muxer itself: add the stream to an in-memory file and write the header, which is
    # where muxers refuse codecs they cannot store. It costs well under a millisecond.
    output = av.open(io.BytesIO(), "w", format=format_name)
    try:
        output.add_stream_from_template(stream)
        output.start_encoding()
        return True
    except (ValueError, av.FFmpegError) as error:
        log.debug("%s refuses %s: %s", format_name, _stream_label(stream), error)
        return False
    finally:
        try:
            output.close()
        except (ValueError, av.FFmpegError):
            log.debug("closing the in-memory %s probe failed", format_name)


def incompatible_streams(
    container: str | OutputContainerKind, streams: Iterable[av.stream.Stream]
) -> list[str]:
    """One phrase per stream the container cannot carry, saying which container can.

    Attachments (fonts for ASS subtitles) are not listed: outside Matroska they are dropped with
    a note, since without the subtitles that use them they carry nothing to see or hear.
    """
    kind = container if isinstance(container, OutputContainerKind) else container_for(container)
    problems = []
    for stream in streams:
        if stream.type == "attachment" or _can_carry(kind, stream):
            continue
        others = [k.ext for k in CONTAINERS.values() if k is not kind and _can_carry(k, stream)]
        advice = f"use {' or '.join(others)}" if others else "no output container vsr writes can carry it"
        problems.append(f"{_stream_label(stream)}: {advice}")
    return problems


def check_output_path(path: Path, inputs: Sequence[Path]) -> None:
    if path.is_dir():
        raise OutputError(f"output is a folder: {path}; give a file name such as {path / 'out.mp4'}")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: the folder {folder} is not writable")
    target = path.resolve()
    for source in inputs:
        if Path(source).resolve() == target:
            raise OutputError(f"output is the input file: {path}; choose another output name")


def movie_timescale(video_time_base: Fraction, passthrough: Sequence[av.stream.Stream]) -> int:
    """An MP4 movie timescale in which every track's start offset is exact.

    Edit lists (which carry a stream's start offset) count in the movie timescale, 1000 by
    default: a video starting at 1920/90000 s would start at 21/1000 s in the output. The least
    common multiple of the streams' time base denominators represents every offset exactly.
    """
    scale = 1000
    for time_base in [video_time_base, *(s.time_base for s in passthrough if s.time_base)]:
        candidate = math.lcm(scale, Fraction(time_base).denominator)
        if candidate < 2**31:  # the field is 32-bit; beyond that, keep the coarser scale
            scale = candidate
    return scale
