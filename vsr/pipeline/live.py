"""Live mode: the parts of a run that keep latency bounded instead of keeping every frame.

Between the Source and the Restore stage the queue drops its *oldest* frame when a new one
arrives and it is full, so the Source never waits (a waiting Source lets the network buffer
fill, and latency then grows without bound), and what Restore gets next is the newest the queue
holds. Restore also drops, at its input, a frame that could not be restored within
``max_latency_s`` of its arrival (wall clock, `Frame.produced_at`): its wait so far plus the
Restore stage's recent time per frame. The newest frame available is never dropped that way,
so a model slower than ``max_latency_s`` still gives a (slow) picture instead of none. The queue
after Restore is short in live mode, so a slow encoder holds Restore back instead of building a
backlog. Both kinds of drop are counted; the log and the event list get one line per burst.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Any

from vsr.media import FileSource, Frame
from vsr.media.live import EventLog, LiveSource, ReconnectPolicy
from vsr.media.live_input import LiveConnectOptions, check_scheme, live_kind
from vsr.pipeline.options import UpscaleOptions
from vsr.pipeline.stats import LatencyStats, LiveReport

__all__ = ["LiveControl", "Pacer", "discontinuity", "live_report", "open_source"]

_MAX_RECONNECT_INTERVAL_S = 30.0

_REPORT_EVERY_S = 5.0  # drops are reported once per burst, at most this often
_LATENCY_SAMPLES = 10_000  # the percentiles are of the latest frames; mean and max of all


class LiveControl:
    """Drop-oldest queueing, staleness and latency accounting for one live run. Thread-safe."""

    def __init__(self, max_latency_s: float, events: EventLog) -> None:
        self.max_latency_s = max_latency_s
        self.events = events
        self.dropped_full = 0  # taken out of a full queue to make room for a newer frame
        self.dropped_late = 0  # older than max_latency_s when Restore reached them
        self._lock = threading.Lock()
        self._unreported = 0
        self._burst_started = 0.0
        self._latencies: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self._latency_sum = 0.0
        self._latency_max = 0.0
        self._latency_count = 0
        self._restore_s = 0.0  # recent Restore time per frame (exponential average)
        # a new connection's first frame was dropped as late: the next frame kept starts it instead
        self._new_connection_dropped = False

    @property
    def dropped(self) -> int:
        return self.dropped_full + self.dropped_late

    def put_newest(self, q: queue.Queue[Any], item: object) -> None:
        """Put without ever waiting: when the queue is full its oldest frame makes room.

        A dropped frame that began a new connection (`discontinuity`) hands its mark on to the
        frame behind it, so the Restore stage still forgets the old connection's state in time.
        """
        while True:
            try:
                q.put_nowait(item)
                return
            except queue.Full:
                pass
            try:
                old = q.get_nowait()
            except queue.Empty:
                continue  # the consumer just made room
            if isinstance(old, Frame):
                if discontinuity(old):
                    with q.mutex:  # the consumer cannot take the next frame while it is marked
                        heir = q.queue[0] if q.queue else item
                        if isinstance(heir, Frame):
                            heir.extra["discontinuity"] = True
                with self._lock:
                    self.dropped_full += 1
                self._count_drop()
            else:  # an end marker is never dropped (only frames are put before it)
                q.put_nowait(old)
                return

    def restored(self, seconds: float, frames: int) -> None:
        """Tell how long the Restore stage took for ``frames`` frames (feeds `is_late`)."""
        per_frame = seconds / max(frames, 1)
        self._restore_s = per_frame if not self._restore_s else 0.8 * self._restore_s + 0.2 * per_frame

    def is_late(self, frame: Frame, *, newer_waiting: bool = True) -> bool:
        """True (and counted) when ``frame`` cannot be restored within ``max_latency_s`` of its
        arrival and a newer frame is waiting to be restored instead: the caller drops it.

        Call it from one thread (the Restore stage) for every frame, in order: when a dropped
        frame began a new connection, the next frame it keeps is marked as beginning it instead.
        """
        late = newer_waiting and time.monotonic() - frame.produced_at + self._restore_s > self.max_latency_s
        if not late:
            if self._new_connection_dropped:
                frame.extra["discontinuity"] = True
                self._new_connection_dropped = False
            return False
        self._new_connection_dropped |= discontinuity(frame)
        with self._lock:
            self.dropped_late += 1
        self._count_drop()
        return True

    def written(self, frame: Frame) -> None:
        """Record the latency of a frame the Sink has just encoded: arrival to encoder."""
        latency = time.monotonic() - frame.produced_at
        with self._lock:
            self._latencies.append(latency)
            self._latency_sum += latency
            self._latency_count += 1
            self._latency_max = max(self._latency_max, latency)
        self._report_drops(final=False)

    def finish(self) -> None:
        self._report_drops(final=True)

    def latency(self) -> LatencyStats:
        with self._lock:
            samples = sorted(self._latencies)
            count, total, peak = self._latency_count, self._latency_sum, self._latency_max
        if not samples:
            return LatencyStats()

        def ms(seconds: float) -> float:
            return round(seconds * 1000, 1)

        def pick(q: float) -> float:
            return ms(samples[min(len(samples) - 1, int(q * len(samples)))])

        return LatencyStats(
            frames=count, mean_ms=ms(total / count), p50_ms=pick(0.5), p95_ms=pick(0.95), max_ms=ms(peak)
        )

    def _count_drop(self) -> None:
        with self._lock:
            if not self._unreported:
                self._burst_started = time.monotonic()
            self._unreported += 1
        self._report_drops(final=False)

    def _report_drops(self, *, final: bool) -> None:
        with self._lock:
            count = self._unreported
            span = time.monotonic() - self._burst_started
            if not count or (not final and span < _REPORT_EVERY_S):
                return
            self._unreported = 0
        self.events.add(
            "dropped",
            f"dropped {count} frames in {span:.1f} s to keep latency under {self.max_latency_s:g} s "
            f"(restore is slower than the input; {self.dropped} dropped so far)",
        )


def open_source(
    input: str,
    options: UpscaleOptions,
    *,
    events: EventLog | None = None,
    stop: threading.Event | None = None,
) -> FileSource | LiveSource:
    """A `LiveSource` for network and camera inputs (it connects now), a `FileSource` otherwise.

    ``events`` and ``stop`` go to the `LiveSource`: its log (connect attempts included), and an
    event that ends its connecting early (`Cancelled`)."""
    if live_kind(input) is None:
        check_scheme(input)
        return FileSource(input, deinterlace=options.deinterlace)
    return LiveSource(
        input,
        connect=LiveConnectOptions(
            transport=options.rtsp_transport,
            open_timeout_s=options.open_timeout,
            read_timeout_s=options.read_timeout,
            low_latency=options.live is not False,
        ),
        reconnect=ReconnectPolicy(
            attempts=options.reconnect_attempts,
            interval_s=options.reconnect_interval,
            max_interval_s=_MAX_RECONNECT_INTERVAL_S,
        ),
        events=events,
        stop=stop,
    )


def live_report(
    source: FileSource | LiveSource,
    events: EventLog,
    control: LiveControl | None,
    max_latency_s: float,
    *,
    interrupted: bool,
) -> LiveReport:
    """The summary's live section; a file replayed with ``--live`` counts as one connection."""
    counts = events.counts
    if isinstance(source, LiveSource):
        connections, ended_by = source.connections, source.end_reason or "stopped"
    else:
        connections, ended_by = 1, "end of file"
    return LiveReport(
        live_mode=control is not None,
        max_latency_s=max_latency_s,
        connections=connections,
        disconnects=counts["disconnected"],
        reconnect_failures=counts["reconnect_failed"] + counts["connect_failed"],
        frames_dropped=control.dropped if control else 0,
        dropped_queue_full=control.dropped_full if control else 0,
        dropped_late=control.dropped_late if control else 0,
        latency=control.latency() if control else LatencyStats(),
        ended_by="interrupted" if interrupted else ended_by,
        events=events.events(),
        gave_up=counts["gave_up"] > 0 and not interrupted,
    )


class Pacer:
    """Holds a file's frames back to their presentation times: a file replayed as if it were live.

    With ``--live`` on a file the Source would otherwise decode far faster than real time, and
    live mode would drop most of it.
    """

    def __init__(self) -> None:
        self._origin: float | None = None

    def wait(self, frame: Frame, stop: threading.Event) -> bool:
        """Sleep until ``frame`` is due; False when ``stop`` was set meanwhile."""
        if self._origin is None:
            self._origin = time.monotonic() - frame.time
        delay = self._origin + frame.time - time.monotonic()
        if delay > 0 and stop.wait(delay):
            return False
        frame.produced_at = time.monotonic()  # it "arrives" now, not when it was decoded
        return True


def discontinuity(frame: Frame) -> bool:
    """Whether ``frame`` starts a new connection (stateful Restore steps must start afresh)."""
    return bool(frame.extra.get("discontinuity"))
