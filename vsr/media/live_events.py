"""What a live run does when a feed drops (`ReconnectPolicy`) and what it tells (`EventLog`).

`LiveSource` (`vsr.media.live`) follows the policy and writes the log; the pipeline's live control
adds its drops to the same log, and the run summary and ``--json`` report its events and counts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from vsr.errors import ConfigError

__all__ = ["EventLog", "LiveEvent", "ReconnectPolicy"]

log = logging.getLogger("vsr.media.live")  # the log's lines keep the name they always had

_MAX_EVENTS = 1000  # the event log keeps the latest; counters keep counting


@dataclass(frozen=True, kw_only=True)
class ReconnectPolicy:
    """``attempts``: consecutive failed attempts before giving up (0: never reconnect, -1: forever).

    Attempt k (0, 1, ...) waits ``interval_s * 2**k``, at most ``max_interval_s``; a connection
    that delivers a frame resets the count. The first connection gets the same number of tries.
    """

    attempts: int = 10
    interval_s: float = 1.0
    max_interval_s: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < -1:
            raise ConfigError(f"--reconnect-attempts must be -1 (forever), 0 or more, got {self.attempts}")
        if self.interval_s < 0 or self.max_interval_s < self.interval_s:
            raise ConfigError("--reconnect-interval must be >= 0 and at most the maximum interval")

    def delay(self, failures: int) -> float:
        return min(self.max_interval_s, self.interval_s * 2.0 ** min(failures, 30))

    def exhausted(self, failures: int) -> bool:
        return self.attempts != -1 and failures >= self.attempts


@dataclass(frozen=True, slots=True)
class LiveEvent:
    kind: str  # connected, disconnected, reconnect_failed, gave_up, resized, dropped
    wall_time: float  # time.time()
    detail: str


class EventLog:
    """What happened to a live run, for the log and the summary. Safe to use from any thread.

    ``label`` starts its log lines (``camera 'door': ``) where a run has several inputs."""

    def __init__(self, label: str = "") -> None:
        self._events: deque[LiveEvent] = deque(maxlen=_MAX_EVENTS)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._prefix = f"{label}: " if label else ""

    def add(self, kind: str, detail: str, *, level: int = logging.WARNING) -> None:
        with self._lock:
            self._events.append(LiveEvent(kind, time.time(), detail))
            self.counts[kind] += 1
        log.log(level, "%s%s: %s", self._prefix, kind, detail)

    def events(self) -> list[LiveEvent]:
        with self._lock:
            return list(self._events)
