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
from pathlib import Path
from types import TracebackType
from typing import Self

import av
import av.stream

from vsr.errors import ConfigError, OutputError
from vsr.media.containers import (
    check_output_path,
    container_for,
    incompatible_streams,
    movie_timescale,
    partial_path,
)
from vsr.media.encoders import choose_output_pix_fmt
from vsr.media.ffmpeg_errors import ffmpeg_reason
from vsr.media.frame import Frame
from vsr.media.muxer import VideoMuxer
from vsr.media.output_spec import VideoOutputSpec

__all__ = ["FileSink", "VideoOutputSpec", "choose_output_pix_fmt", "incompatible_streams"]

log = logging.getLogger(__name__)


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
        kind = self._kind = container_for(self.path)
        if kind.playlist:
            raise ConfigError(f"{self.path} is a playlist: HlsSink writes {kind.ext} outputs")
        inputs = [Path(s.container.name) for s in passthrough]
        check_output_path(self.path, inputs + ([Path(source_path)] if source_path else []))
        problems = incompatible_streams(kind.ext, passthrough)
        if problems:
            raise ConfigError(f"{kind.ext} cannot carry {'; '.join(problems)}")
        self.partial_path = partial_path(self.path)
        self._closed = False
        options = dict(kind.options)
        if kind.format in ("mp4", "mov"):
            options["movie_timescale"] = str(movie_timescale(spec.time_base, passthrough))
        try:
            container = av.open(str(self.partial_path), "w", format=kind.format, container_options=options)
        except av.FFmpegError as error:
            raise OutputError(f"cannot create {self.partial_path}: {ffmpeg_reason(error)}") from None
        try:
            self._muxer = VideoMuxer(container, self.path.name, kind, spec, passthrough, self._write_failed)
            try:
                container.start_encoding()
            except (av.FFmpegError, ValueError) as error:
                raise OutputError(
                    f"cannot start writing {self.partial_path}: {ffmpeg_reason(error)}"
                ) from None
        except BaseException:
            self._closed = True
            try:
                container.close()
            except (av.FFmpegError, ValueError, OSError) as error:
                log.warning("closing %s failed: %s", self.partial_path, ffmpeg_reason(error))
            self.partial_path.unlink(missing_ok=True)
            raise

    @property
    def notes(self) -> list[str]:
        return self._muxer.notes

    @property
    def frames_written(self) -> int:
        return self._muxer.frames_written

    # -- writing --------------------------------------------------------------------------------

    def write_frame(self, frame: Frame) -> None:
        """Encode one frame; its pts (in ``frame.time_base``) must increase from frame to frame."""
        self._check_open()
        self._muxer.write_frame(frame)

    def write_packet(self, packet: av.Packet) -> None:
        """Mux a packet demuxed from one of the passthrough streams, byte for byte."""
        self._check_open()
        self._muxer.write_packet(packet)

    # -- finishing ------------------------------------------------------------------------------

    def close(self) -> Path:
        """Flush the encoder, finish the file and move it to the requested path; return that path."""
        self._check_open()
        self._closed = True
        muxer = self._muxer
        if muxer.rounded:
            muxer.note(
                f"{muxer.rounded} of {muxer.frames_written} timestamps fall between {self.path.suffix}'s "
                f"{muxer.tick} s ticks and were rounded (use .mp4 or .mov to keep them exact)"
            )
        muxer.finish()
        if muxer.frames_written == 0:
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
        self._muxer.finish_after_failure()
        if self._muxer.frames_written == 0:
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

    def _write_failed(self, error: BaseException, doing: str, frames: int) -> OutputError:
        if getattr(error, "errno", None) == errno.ENOSPC:
            return OutputError(
                f"disk full while writing {self.partial_path} after {frames} frames; free space and run again"
            )
        return OutputError(
            f"writing {self.partial_path} failed while {doing} (after {frames} frames): "
            f"{ffmpeg_reason(error)}"
        )
