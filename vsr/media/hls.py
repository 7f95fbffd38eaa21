"""`HlsSink`: an HLS output, a playlist (``out/index.m3u8``) and MPEG-TS segments beside it.

FFmpeg's hls muxer does the segmenting; vsr forces a keyframe (an IDR: libx264 keeps GOPs
closed) at every segment boundary, so every segment starts with one, lasts ``segment_s`` (the
last one less) and decodes on its own (``#EXT-X-INDEPENDENT-SEGMENTS`` says so to players).

Crash safety comes from how the muxer writes, checked in ``tests/test_publish.py``: a segment is
written under ``NAME.ts.tmp`` and renamed when complete (``temp_file``), and the playlist is
rewritten through a temporary file and a rename after each segment. So the playlist only ever
lists complete segments, each playable; a crash loses the segment in progress (at most
``segment_s``), and the playlist then simply lacks ``#EXT-X-ENDLIST``, like a live one.

For a file input every segment is kept and listed (a video on demand). For a live input the
playlist is a sliding window of the latest ``live_list_size`` segments and older segment files
are deleted (``delete_segments``), so a camera can run for months in bounded disk space.

An earlier output at the same path (replaced with ``--overwrite``) is removed when the sink
opens: its playlist and its segment files, and only those (``STEM-NNNNN.ts`` and the
``.ts.tmp`` a crash leaves), never anything else in the folder. FFmpeg would rewrite the
segments the new run reaches and leave a longer run's later ones behind, where they would never
be listed or deleted (a live window deletes only the segments it wrote itself).
"""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import av.stream

from vsr.errors import ConfigError, OutputError
from vsr.media.containers import check_output_path, container_for, incompatible_streams
from vsr.media.ffmpeg_errors import ffmpeg_reason
from vsr.media.ffmpeg_paths import ffmpeg_path, local_path
from vsr.media.frame import Frame
from vsr.media.output_spec import VideoOutputSpec
from vsr.media.sink_base import MuxedSink, start_muxer

__all__ = ["DEFAULT_SEGMENT_S", "HlsSink", "check_hls_segment"]

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_S = 4.0
_LIVE_LIST_SIZE = 6


def check_hls_segment(segment_s: float | None) -> None:
    """HLS segments last at least a second: the playlist's target duration is whole seconds (0
    for shorter ones), and players reload a live playlist at that interval."""
    if segment_s is not None and segment_s < 1:
        raise ConfigError(f"HLS segments must last at least 1 s, got {segment_s:g} s")


class HlsSink(MuxedSink):
    """Writes ``playlist`` (a ``.m3u8`` path) and its segments ``STEM-00000.ts``, ... beside it.

    The same calls as `FileSink`: `write_frame`, `write_packet`, `close`, `abort`.
    """

    def __init__(
        self,
        playlist: str | Path,
        spec: VideoOutputSpec,
        passthrough: Sequence[av.stream.Stream] = (),
        *,
        segment_s: float = DEFAULT_SEGMENT_S,
        live: bool = False,
        live_list_size: int = _LIVE_LIST_SIZE,
    ) -> None:
        self.path = Path(playlist)
        self.spec = spec
        kind = container_for(self.path)
        if not kind.playlist:
            raise ConfigError(f"{self.path} is not a playlist; HlsSink writes .m3u8 outputs")
        check_hls_segment(segment_s)
        check_output_path(self.path, [local_path(s.container.name) for s in passthrough])
        problems = incompatible_streams(kind, passthrough)
        if problems:
            raise ConfigError(f"HLS (MPEG-TS segments) cannot carry {'; '.join(problems)}")
        self.segment_s = segment_s
        self._segment_ticks = Fraction(str(segment_s)) / spec.time_base  # the decimal written
        self._next_cut: Fraction | None = None
        self._closed = False
        self.pattern = self.path.with_name(f"{self.path.stem}-%05d.ts")
        # %05d: five digits, six from segment 100000 on (after 4.6 days of 4 s segments)
        self._segment_name = re.compile(re.escape(self.path.stem) + r"-(\d{5,})\.ts(\.tmp)?")
        replaced = self._remove_earlier_output()
        flags = ["independent_segments", "temp_file"] + (["delete_segments"] if live else [])
        options = {
            "hls_time": f"{segment_s:g}",
            # 0 lists every segment; a live window lists the latest ones
            "hls_list_size": str(live_list_size if live else 0),
            "hls_flags": "+".join(flags),
            "hls_segment_type": "mpegts",
            "hls_segment_filename": ffmpeg_path(self.pattern),
        }
        try:
            container = av.open(ffmpeg_path(self.path), "w", format=kind.format, container_options=options)
        except av.FFmpegError as error:
            raise OutputError(f"cannot create {self.path}: {ffmpeg_reason(error)}") from None
        self._muxer = start_muxer(
            container, self.path.name, kind, spec, passthrough,
            on_write_error=self._write_failed,
            on_start_error=lambda error, _: OutputError(
                f"cannot start writing {self.path}: {ffmpeg_reason(error)}"
            ),
            notes=[replaced] if replaced else [],
            undo=self._remove_outputs,
        )  # fmt: skip

    @property
    def label(self) -> str:
        return str(self.path)

    @property
    def segments(self) -> list[Path]:
        """The segment files on disk now, in order (complete ones; not the one in progress)."""
        return self._segment_files(unfinished=False)

    def _segment_files(self, *, unfinished: bool) -> list[Path]:
        numbered = []
        for path in self.path.parent.iterdir():
            match = self._segment_name.fullmatch(path.name)
            if match and (unfinished or not match[2]):
                numbered.append((int(match[1]), path.name, path))
        return [path for *_, path in sorted(numbered)]

    def write_frame(self, frame: Frame) -> None:
        """Encode one frame, as a keyframe when it starts a segment."""
        self._check_open()
        pts = self._muxer.output_pts(frame)
        if self._next_cut is None:
            self._next_cut = pts + self._segment_ticks
            keyframe = True
        else:
            keyframe = pts >= self._next_cut
            while pts >= self._next_cut:
                self._next_cut += self._segment_ticks
        self._muxer.write_frame(frame, keyframe=keyframe)

    def close(self) -> Path:
        """Finish the last segment and end the playlist (``#EXT-X-ENDLIST``); return its path."""
        self._check_open()
        self._closed = True
        self._muxer.finish()
        if self._muxer.frames_written == 0:
            self._remove_outputs()
            raise OutputError(f"no video frame was written; {self.path} was not created")
        return self.path

    def abort(self) -> Path | None:
        """After a failure or interrupt: finish what can be finished; the playlist stays valid."""
        if not self._closed:
            self._closed = True
            self._muxer.finish_after_failure()
        return self.path if self.path.exists() else None

    def _remove_earlier_output(self) -> str | None:
        """Delete the playlist and segment files of an earlier output here; say what went."""
        segments = self._segment_files(unfinished=True)  # with the .ts.tmp a crash leaves
        playlist = self.path.exists()
        if not segments and not playlist:
            return None
        try:
            for path in [self.path, *segments]:
                path.unlink(missing_ok=True)
        except OSError as error:
            raise OutputError(f"cannot replace the earlier output {self.path}: {error}") from None
        log.info("removed the earlier %s and %d segment files", self.path, len(segments))
        what = "its playlist and " if playlist else ""
        return f"replaced an earlier output: removed {what}{len(segments)} segment files"

    def _remove_outputs(self) -> None:
        for path in [self.path, *self.segments]:
            path.unlink(missing_ok=True)

    def _write_failed(self, error: BaseException, doing: str, frames: int) -> OutputError:
        if getattr(error, "errno", None) == errno.ENOSPC:
            return OutputError(
                f"disk full while writing {self.path}'s segments after {frames} frames; free space and run again"
            )
        return OutputError(
            f"writing {self.path} failed while {doing} (after {frames} frames): {ffmpeg_reason(error)}"
        )
