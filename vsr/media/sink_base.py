"""What every output shares: `SinkBase` (the once-only lifecycle) and `MuxedSink` (one `VideoMuxer`).

A sink is closed (finished) or aborted (kept as far as it got) exactly once: as a context manager
it closes when the block ends normally and aborts when it raises; a write after either is a bug
and raises `RuntimeError`. `start_muxer` builds the muxer on a freshly opened container and writes
its header, so that a refusal comes back as the output's own one-line error and leaves nothing
behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import av
import av.container
import av.stream

from vsr.errors import OutputError
from vsr.media.containers import OutputContainerKind
from vsr.media.ffmpeg_errors import ffmpeg_reason
from vsr.media.frame import Frame
from vsr.media.muxer import VideoMuxer, WriteFailure
from vsr.media.output_spec import VideoOutputSpec

__all__ = ["MuxedSink", "SinkBase", "start_muxer"]

log = logging.getLogger(__name__)

# (error, seconds the header took) -> the one-line error of an output that refused to start
StartFailure = Callable[[BaseException, float], OutputError]


class SinkBase:
    """The lifecycle of an output: subclasses set ``_closed = False`` and define `close`/`abort`."""

    _closed: bool

    @property
    def label(self) -> str:
        """What a message calls this output (its path, or its URL without a password)."""
        raise NotImplementedError

    def close(self) -> Path | str:
        raise NotImplementedError

    def abort(self) -> Path | None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._closed:
            self.close() if exc_type is None else self.abort()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} for {self.label} is already closed")


class MuxedSink(SinkBase):
    """An output written through one `VideoMuxer` (``_muxer``, set by the subclass's constructor)."""

    _muxer: VideoMuxer

    @property
    def notes(self) -> list[str]:
        return self._muxer.notes

    @property
    def frames_written(self) -> int:
        return self._muxer.frames_written

    def write_frame(self, frame: Frame) -> None:
        """Encode one frame; its pts (in ``frame.time_base``) must increase from frame to frame."""
        self._check_open()
        self._muxer.write_frame(frame)

    def write_packet(self, packet: av.Packet) -> None:
        """Mux a packet demuxed from one of the passthrough streams, byte for byte."""
        self._check_open()
        self._muxer.write_packet(packet)


def start_muxer(
    container: av.container.OutputContainer,
    name: str,
    kind: OutputContainerKind,
    spec: VideoOutputSpec,
    passthrough: Sequence[av.stream.Stream],
    *,
    on_write_error: WriteFailure,
    on_start_error: StartFailure,
    notes: Sequence[str] = (),
    undo: Callable[[], None] = lambda: None,
    chunked: bool = False,
) -> VideoMuxer:
    """The muxer of an open ``container``, its streams added, encoder opened and header written.

    On any failure the container is closed, ``undo`` removes what it left on disk, and the error
    propagates; a refused header (or RTSP handshake) as ``on_start_error`` phrases it.
    ``chunked``: the output may use several encoders on GOP-aligned chunks (files only).
    """
    try:
        muxer = VideoMuxer(container, name, kind, spec, passthrough, on_write_error, chunked=chunked)
        for text in notes:
            muxer.note(text)
        started = time.monotonic()
        try:
            container.start_encoding()  # the header; for RTSP: connect, ANNOUNCE, SETUP, RECORD
        except (av.FFmpegError, ValueError, OSError) as error:
            raise on_start_error(error, time.monotonic() - started) from None
    except BaseException:
        try:
            container.close()
        except (av.FFmpegError, ValueError, OSError) as error:
            # expected, often (an RTSP publish the server refused): the start's error is the story
            log.debug("closing %s after it failed to start failed too: %s", name, ffmpeg_reason(error))
        undo()
        raise
    return muxer
