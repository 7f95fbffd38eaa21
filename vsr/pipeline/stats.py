"""Per-stage accounting and the run summary."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunSummary", "StageClock", "StageStats"]


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
    restore_steps: list[StageStats]  # upload (+ colour), model, download (+ colour) inside restore
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
    notes: list[str] = field(default_factory=list)

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
