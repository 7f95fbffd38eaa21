"""Turning FFmpeg's exceptions into the short reason a one-line vsr error can carry."""

from __future__ import annotations

import av

__all__ = ["ffmpeg_reason"]


def ffmpeg_reason(error: BaseException) -> str:
    """FFmpeg's own words for ``error``, without the call name and file name PyAV appends.

    PyAV only knows FFmpeg's detailed log line (e.g. "moov atom not found") when the application
    turned FFmpeg logging on (``av.logging.set_level``); the library does not, because that
    routes every FFmpeg warning into the application's logging. When the line is there, it is kept.
    """
    if not isinstance(error, av.FFmpegError):
        return str(error) or type(error).__name__
    reason = error.strerror or str(error)
    log = error.log
    if isinstance(log, tuple) and len(log) == 3 and log[2]:
        reason = f"{reason} ({str(log[2]).strip()})"
    return reason
