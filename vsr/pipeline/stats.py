"""Per-stage accounting and the run summary."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LatencyStats", "LiveReport", "RunSummary", "StageClock", "StageStats"]


class StageClock:
    """Accumulates the time a stage spends working (not waiting on its queues)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.busy_s = 0.0
        self.frames = 0
        self._lock = threading.Lock()

    @contextmanager
    def busy(self, frames: int = 0) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self.busy_s += elapsed
                self.frames += frames

    def add(self, seconds: float, frames: int = 0) -> None:
        with self._lock:
            self.busy_s += seconds
            self.frames += frames

    def stats(self, wall_s: float) -> StageStats:
        return StageStats(
            name=self.name,
            frames=self.frames,
            busy_s=round(self.busy_s, 4),
            busy_fraction=round(self.busy_s / wall_s, 4) if wall_s > 0 else 0.0,
            fps=round(self.frames / self.busy_s, 3) if self.busy_s > 0 else 0.0,
        )


@dataclass(frozen=True)
class StageStats:
    name: str
    frames: int
    busy_s: float
    busy_fraction: float  # of the run's wall time
    fps: float  # frames per busy second: the stage's speed were it alone


@dataclass(frozen=True)
class LatencyStats:
    """Wall time from a frame's arrival (decoded by the Source) to its hand-over to the encoder."""

    frames: int = 0
    mean_ms: float = 0.0
    p50_ms: float = 0.0  # percentiles of the latest 10 000 frames
    p95_ms: float = 0.0
    max_ms: float = 0.0

    def describe(self) -> str:
        if not self.frames:
            return "latency to the encoder: no frames"
        return f"latency to the encoder p50 {self.p50_ms:.0f} ms, p95 {self.p95_ms:.0f} ms, max {self.max_ms:.0f} ms"


@dataclass
class LiveReport:
    """What happened to a live input: connections, drops, latency, and every event with its time."""

    live_mode: bool  # frames were dropped to bound latency (False: --no-live, every frame kept)
    max_latency_s: float
    connections: int  # successful ones, the first included
    disconnects: int
    reconnect_failures: int  # attempts that did not give a connection
    frames_dropped: int
    dropped_queue_full: int
    dropped_late: int  # older than max_latency_s when Restore reached them
    latency: LatencyStats
    ended_by: str  # "interrupted", or why the input ended (reconnecting off, attempts used up)
    events: list[Any] = field(default_factory=list)  # `vsr.media.live.LiveEvent`s, the latest 1000
    gave_up: bool = False  # the input was lost for good: its reconnect attempts were used up

    @property
    def interrupted(self) -> bool:
        return self.ended_by == "interrupted"


@dataclass
class RunSummary:
    input: str
    output: str  # the final file, or the kept partial file after a failure/interrupt
    completed: bool
    frames_in: int
    frames_out: int
    wall_s: float
    fps: float
    stages: list[StageStats]  # decode, restore, encode: the three threads
    restore_steps: list[StageStats]  # upload (+ colour), [analyse, denoise], model, [temporal], download
    bottleneck: str
    model: str
    backend: str
    device: str
    precision: str
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    encoder: str
    pix_fmt: str
    passthrough_packets: int = 0
    frames_reused: int = 0  # still frames that took the previous output instead of the model's
    frames_partial: int = 0  # frames of which only the changed tiles ran (changed-region reuse)
    pixels_reused: float = 0.0  # share of all output pixels taken from a previous output, both ways
    scene_cuts: int = 0  # cuts found after the first frame (counted when a step needs them)
    notes: list[str] = field(default_factory=list)
    live: LiveReport | None = None  # live inputs (RTSP, RTMP, HTTP, camera) only
    segments: list[str] = field(default_factory=list)  # the files written with --segment, in order

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("stages", "restore_steps"):
            data[key] = {s["name"]: {k: v for k, v in s.items() if k != "name"} for s in data[key]}
        return data

    @staticmethod
    def pick_bottleneck(stages: list[StageStats]) -> str:
        """The stage that was busy the largest share of the run: the one to make faster."""
        return max(stages, key=lambda s: s.busy_fraction).name if stages else ""

    def output_path(self) -> Path:
        return Path(self.output)
