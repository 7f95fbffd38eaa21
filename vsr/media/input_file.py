"""Opening an input file, with a one-line `InputError` for each way it can fail before decoding."""

from __future__ import annotations

import os
from pathlib import Path

import av
import av.container
import av.stream

from vsr.errors import InputError
from vsr.media.ffmpeg_errors import ffmpeg_reason
from vsr.media.ffmpeg_paths import ffmpeg_path

__all__ = ["check_input_path", "codec_name", "describe_streams", "open_input"]


def check_input_path(path: Path) -> None:
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a folder, not a video file: {path}")
    if not os.access(path, os.R_OK):
        raise InputError(f"input is not readable (permission denied): {path}")
    if path.stat().st_size == 0:
        raise InputError(f"input is empty (0 bytes): {path}")


def _looks_like_iso_media(path: Path) -> bool:
    # MP4/MOV files start with an 'ftyp' box; without a 'moov' box FFmpeg cannot open them, and
    # the usual reason is a recording or download that was cut off before it was finished.
    with path.open("rb") as handle:
        head = handle.read(12)
    return head[4:8] == b"ftyp"


def open_input(path: Path) -> av.container.InputContainer:
    """``av.open`` for reading, with FFmpeg's refusals turned into `InputError`."""
    check_input_path(path)
    try:
        # Metadata in the wild is not always UTF-8; a bad title must not make a video unreadable.
        return av.open(ffmpeg_path(path), mode="r", metadata_errors="replace")
    except av.FFmpegError as error:
        reason = ffmpeg_reason(error)
        if _looks_like_iso_media(path):
            raise InputError(
                f"input is an MP4/MOV file FFmpeg cannot open, most likely truncated (its index is "
                f"missing or cut off): {path} ({reason})"
            ) from None
        if isinstance(error, av.error.InvalidDataError):
            raise InputError(f"input is not a media file FFmpeg can read: {path} ({reason})") from None
        raise InputError(f"cannot read {path} as media: {reason}; it may be truncated or damaged") from None


def codec_name(stream: av.stream.Stream) -> str:
    """The codec's standard name ("av1", "subrip"), not the decoder's ("libdav1d", "srt")."""
    context = stream.codec_context
    if context is None:
        return "unknown codec" if stream.type != "attachment" else "attachment"
    return context.codec.canonical_name


def describe_streams(container: av.container.InputContainer) -> str:
    return ", ".join(f"#{s.index} {s.type} {codec_name(s)}" for s in container.streams) or "none"
