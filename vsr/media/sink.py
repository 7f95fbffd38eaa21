"""`FileSink`: encode `Frame`s, mux them with the copied audio/subtitle packets, finish atomically.

The output is written under a temporary name beside the requested one (``out.partial.mp4``) in
a form that is playable at any moment (fragmented MP4/MOV, Matroska, MPEG-TS), and renamed to
the requested name only when complete. A crash leaves the partial file; nothing half-written
ever sits at the requested path.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

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
from vsr.media.ffmpeg_paths import ffmpeg_path, local_path
from vsr.media.output_spec import VideoOutputSpec
from vsr.media.sink_base import MuxedSink, start_muxer
from vsr.media.tags import needs_metadata_keys

__all__ = ["FileSink", "VideoOutputSpec", "choose_output_pix_fmt", "incompatible_streams"]


class FileSink(MuxedSink):
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
        inputs = [local_path(s.container.name) for s in passthrough]
        check_output_path(self.path, inputs + ([Path(source_path)] if source_path else []))
        problems = incompatible_streams(kind.ext, passthrough)
        if problems:
            raise ConfigError(f"{kind.ext} cannot carry {'; '.join(problems)}")
        self.partial_path = partial_path(self.path)
        self._closed = False
        options = dict(kind.options)
        if kind.format in ("mp4", "mov"):
            options["movie_timescale"] = str(movie_timescale(spec.time_base, passthrough))
            if needs_metadata_keys(spec.tags):
                options["movflags"] += "+use_metadata_tags"
        try:
            container = av.open(
                ffmpeg_path(self.partial_path), "w", format=kind.format, container_options=options
            )
        except av.FFmpegError as error:
            raise OutputError(f"cannot create {self.partial_path}: {ffmpeg_reason(error)}") from None
        self._muxer = start_muxer(
            container, self.path.name, kind, spec, passthrough,
            on_write_error=self._write_failed,
            on_start_error=lambda error, _: OutputError(
                f"cannot start writing {self.partial_path}: {ffmpeg_reason(error)}"
            ),
            undo=lambda: self.partial_path.unlink(missing_ok=True),
            chunked=True,  # spec.encoder_instances encoders on GOP-aligned chunks
        )  # fmt: skip

    @property
    def label(self) -> str:
        return str(self.path)

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

    # -- helpers --------------------------------------------------------------------------------

    def _write_failed(self, error: BaseException, doing: str, frames: int) -> OutputError:
        if getattr(error, "errno", None) == errno.ENOSPC:
            return OutputError(
                f"disk full while writing {self.partial_path} after {frames} frames; free space and run again"
            )
        return OutputError(
            f"writing {self.partial_path} failed while {doing} (after {frames} frames): "
            f"{ffmpeg_reason(error)}"
        )
