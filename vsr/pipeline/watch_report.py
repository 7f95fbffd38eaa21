"""What a `vsr watch` run reports: one `FeedReport` per camera and the shared model's counters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vsr.pipeline.stats import LatencyStats, StageStats

__all__ = ["FeedReport", "WatchSummary"]


@dataclass
class FeedReport:
    name: str
    input: str  # the URL without its password, or the file
    output: str | None  # the finished file (the last segment), the partial file kept, or None
    segments: list[str]  # the finished segments, in order (segmented outputs)
    completed: bool  # the output was finished normally (not aborted by an error)
    live: bool  # frames were dropped to bound latency (a live input)
    ended_by: str  # "end of file", "interrupted", "gave up: <why>", or "failed: ..."
    error: str | None  # why this feed failed, when it did
    gave_up: bool  # its reconnect attempts ran out: at the start (nothing written) or mid-run
    frames_in: int
    frames_out: int
    frames_reused: int  # still frames that took the feed's previous output instead of the model's
    frames_dropped: int
    dropped_queue_full: int
    dropped_late: int
    connections: int  # successful ones, the first included (1 for a file; 0: it never came up)
    disconnects: int
    reconnects: int
    reconnect_failures: int  # attempts that did not give a connection
    latency: LatencyStats  # arrival (decoded) to the encoder
    input_size: tuple[int, int] | None  # from its first frame; None: it never came up
    output_size: tuple[int, int] | None
    events: list[Any] = field(default_factory=list)  # `vsr.media.live.LiveEvent`s, the latest 1000
    notes: list[str] = field(default_factory=list)


@dataclass
class WatchSummary:
    config: str
    feeds: list[FeedReport]
    model: str
    backend: str
    device: str
    precision: str
    batch: int
    wall_s: float
    model_calls: int
    cross_feed_calls: int  # model calls that had frames of more than one feed
    frames_restored: int
    # the shared Restore thread: upload (+ colour), [analyse, denoise], model, [temporal], download
    restore_steps: list[StageStats]
    interrupted: bool  # ended by Ctrl-C / SIGTERM (every output finished)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[FeedReport]:
        return [feed for feed in self.feeds if feed.error is not None]

    @property
    def missing(self) -> list[FeedReport]:
        """Cameras that did not fail but did not record to the end: they gave up, at the start or
        mid-run, or the run was stopped before they ever came up."""
        return [f for f in self.feeds if f.error is None and (f.gave_up or f.input_size is None)]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["restore_steps"] = {
            s["name"]: {k: v for k, v in s.items() if k != "name"} for s in data["restore_steps"]
        }
        return data
