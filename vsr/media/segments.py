"""`SegmentSink`: a recording cut into files of a fixed duration, each playable on its own.

``out.mp4`` with 10-minute segments becomes ``out-20250301T120000Z.mp4``,
``out-20250301T121000Z.mp4``, ... named by the UTC wall time of each segment's first frame (a
``-2``, ``-3`` suffix when two would share a second). Each segment is a complete `FileSink`
output: its own encoder, so it starts with a keyframe, timestamps from 0, and it is finished and
renamed from its ``.partial`` name as soon as the next one starts. A crash loses nothing of the
finished segments and leaves the current one playable under its partial name.

Segments are cut on the output timeline (frame pts), not the wall clock, so a segment holds
``duration`` seconds of video however long the input took to deliver it. Only the video is
segmented: audio and subtitle streams are not copied into segments.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

from vsr.errors import ConfigError, OutputError
from vsr.media.containers import check_output_path, container_for
from vsr.media.frame import Frame
from vsr.media.output_spec import VideoOutputSpec
from vsr.media.sink import FileSink
from vsr.media.sink_base import SinkBase
from vsr.media.tags import without_chapters

__all__ = ["SegmentSink", "parse_duration"]

log = logging.getLogger(__name__)

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str | float) -> float:
    """``"10m"``, ``"30s"``, ``"1h"``, ``"90"`` (seconds) or a number -> seconds (positive)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*", str(text).lower())
        if match is None:
            raise ConfigError(f"--segment must look like 10m, 30s, 1h or a number of seconds, got {text!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"--segment must be a positive duration, got {text!r}")
    return seconds


class SegmentSink(SinkBase):
    """Writes ``path``'s segments; the same calls as `FileSink` (`write_frame`, `close`, `abort`)."""

    def __init__(self, path: str | Path, spec: VideoOutputSpec, duration_s: float) -> None:
        self.path = Path(path)
        self.notes: list[str] = []
        if spec.tags.chapters:  # their times are the whole input's, not a segment's
            self.notes.append(
                f"segments do not carry chapters; the input's {len(spec.tags.chapters)} are not copied"
            )
            spec = replace(spec, tags=without_chapters(spec.tags))
        self.spec = spec
        self.duration_s = duration_s
        # the decimal the user wrote (0.2 s), not the binary float nearest to it (a hair over 0.2 s,
        # which would keep a frame at exactly 0.2 s in the segment before)
        self._ticks = Fraction(str(duration_s)) / spec.time_base
        self.segments: list[Path] = []  # finished segments, in order
        self.frames_written = 0
        self._current: FileSink | None = None
        self._start_pts = 0
        self._closed = False
        container_for(self.path)
        check_output_path(self.path, [])

    @property
    def partial_path(self) -> Path | None:
        return self._current.partial_path if self._current is not None else None

    @property
    def label(self) -> str:
        return str(self.path)

    def write_frame(self, frame: Frame) -> None:
        self._check_open()
        pts = round(Fraction(frame.pts) * frame.time_base / self.spec.time_base)
        if self._current is not None and pts - self._start_pts >= self._ticks:
            self._finish_current()
        if self._current is None:
            self._current = FileSink(self._next_name(), self.spec)
            self._start_pts = pts
        duration = round(Fraction(frame.duration) * frame.time_base / self.spec.time_base)
        rebased = replace(frame, pts=pts - self._start_pts, time_base=self.spec.time_base, duration=duration)
        self._current.write_frame(rebased)
        self.frames_written += 1

    def write_packet(self, packet: object) -> None:
        raise ValueError("segmented output carries video only; audio/subtitle packets cannot be written")

    def close(self) -> Path:
        """Finish the current segment; return the last segment's path."""
        self._closed = True
        if self._current is not None:
            self._finish_current()
        if not self.segments:
            raise OutputError(f"no video frame was written; no segment of {self.path} was created")
        return self.segments[-1]

    def abort(self) -> Path | None:
        self._closed = True
        if self._current is None:
            return self.segments[-1] if self.segments else None
        kept = self._current.abort()
        self._current = None
        return kept

    def _finish_current(self) -> None:
        sink, self._current = self._current, None
        assert sink is not None
        done = sink.close()
        self.notes += [n for n in sink.notes if n not in self.notes]
        self.segments.append(done)
        log.info("segment finished: %s (%d frames)", done, sink.frames_written)

    def _next_name(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        stem, suffix = self.path.stem, self.path.suffix
        candidate = self.path.with_name(f"{stem}-{stamp}{suffix}")
        n = 2
        while candidate.exists() or candidate in self.segments:
            candidate = self.path.with_name(f"{stem}-{stamp}-{n}{suffix}")
            n += 1
        return candidate
