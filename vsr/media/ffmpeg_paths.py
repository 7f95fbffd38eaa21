"""Local paths as FFmpeg must be given them, and back.

FFmpeg reads a name whose part before a colon looks like a URL scheme as a protocol: a camera's
``rec-2024-01-01T12:30:00.mp4`` is protocol ``rec-2024-01-01T12``, which does not exist. The
``file:`` prefix says it is a file; names without a colon are passed as they are, so FFmpeg's
messages keep quoting them as the user wrote them.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ffmpeg_path", "local_path"]

_FILE = "file:"


def ffmpeg_path(path: str | Path) -> str:
    """``path`` (a local file) as a name FFmpeg opens as that file."""
    text = str(path)
    return _FILE + text if ":" in text else text


def local_path(name: str) -> Path:
    """The local path behind a name `ffmpeg_path` made (an opened container's ``name``)."""
    return Path(name.removeprefix(_FILE))
