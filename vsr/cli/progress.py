"""Progress line and end-of-run summary, rendered for a terminal (or a log when not a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from vsr.pipeline.images import ImageRunSummary
from vsr.pipeline.runner import Progress
from vsr.pipeline.stats import RunSummary
from vsr.text import counted

__all__ = ["ProgressPrinter", "format_image_summary", "format_summary"]


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    m, s = divmod(int(seconds + 0.5), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressPrinter:
    """A bar redrawn in place on a terminal; a plain line every few seconds otherwise."""

    def __init__(self, stream: TextIO | None = None, *, width: int = 30, log_every_s: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.interactive = self.stream.isatty()
        self.log_every_s = log_every_s
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._last < (0.2 if self.interactive else self.log_every_s):
            return
        self._last = now
        if p.frames_total:
            done = min(1.0, p.frames_done / p.frames_total)
            bar = "#" * int(done * self.width)
            head = f"[{bar:<{self.width}}] {p.frames_done}/{p.frames_total}"
        else:
            head = f"{p.frames_done} frames"
        line = f"{head}  {p.fps:6.2f} fps  elapsed {_clock(p.elapsed_s)}  eta {_clock(p.eta_s)}"
        if self.interactive:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.interactive and self._last:
            self.stream.write("\n")
            self.stream.flush()


def format_summary(s: RunSummary) -> str:
    lines = [
        f"wrote {s.output}",
        f"  {s.frames_out} frames ({s.input_size[0]}x{s.input_size[1]} -> {s.output_size[0]}x{s.output_size[1]}, "
        f"{s.encoder} {s.pix_fmt}) in {s.wall_s:.2f} s: {s.fps:.2f} fps end to end",
        f"  model {s.model} on {s.backend}/{s.device} {s.precision}; {s.passthrough_packets} audio/subtitle packets copied",
        "  stage      frames    busy   fps (alone)",
    ]
    for st in s.stages:
        mark = "  <- bottleneck" if st.name == s.bottleneck else ""
        lines.append(f"  {st.name:<9}{st.frames:>8} {st.busy_fraction:>7.0%} {st.fps:>9.2f}{mark}")
        if st.name == "restore":
            for step in s.restore_steps:
                lines.append(
                    f"    {step.name:<9}{step.frames:>6} {step.busy_fraction:>7.0%} {step.fps:>9.2f}"
                )
    lines += _live_lines(s)
    lines += [f"  note: {n}" for n in s.notes]
    return "\n".join(lines)


def _live_lines(s: RunSummary) -> list[str]:
    lines = []
    if s.segments:
        lines.append(
            f"  {counted(len(s.segments), 'segment')}: {s.segments[0]}"
            + (f" ... {s.segments[-1]}" if len(s.segments) > 1 else "")
        )
    live = s.live
    if live is None:
        return lines
    lines.append(
        f"  live: {live.connections} connections, {live.disconnects} disconnects, "
        f"{live.reconnect_failures} failed attempts; ended: {live.ended_by}"
    )
    if live.live_mode:
        lat = live.latency
        lines.append(
            f"  live: {live.frames_dropped} frames dropped ({live.dropped_queue_full} from a full queue, "
            f"{live.dropped_late} older than {live.max_latency_s:g} s); {lat.describe()}"
        )
    return lines


def format_image_summary(s: ImageRunSummary) -> str:
    count = len(s.images)
    what = f"{count} image" if count == 1 else f"{count} images"
    lines = [
        f"wrote {s.output}" + ("" if count == 1 else f" ({what})"),
        f"  {what} in {s.wall_s:.2f} s: {s.per_image_s:.2f} s per image",
        f"  model {s.model} on {s.backend}/{s.device} {s.precision}",
    ]
    lines += [f"  note: {n}" for n in s.notes]
    return "\n".join(lines)
