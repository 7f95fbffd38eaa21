"""`Feed`: one camera of a `vsr watch` run: its source, plan, queues, sink, counters and report.

`open_feed` opens the input and plans it as `vsr upscale` would, with the run's shared model;
errors name the camera. `Feed.fail` ends this feed alone (`vsr.pipeline.watch`).
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any

from vsr.errors import ConfigError, VsrError
from vsr.media import FileSink, FileSource, incompatible_streams
from vsr.media.live import EventLog, LiveSource
from vsr.media.live_input import redact
from vsr.media.segments import SegmentSink
from vsr.models import LoadedModel
from vsr.pipeline.live import LiveControl, open_source
from vsr.pipeline.plan import RunPlan, check_paths, make_plan
from vsr.pipeline.watch_config import CameraConfig
from vsr.pipeline.watch_report import FeedReport

__all__ = ["Feed", "open_feed"]

log = logging.getLogger(__name__)


def _about(camera: str, error: VsrError) -> VsrError:
    """The same error, its message prefixed with the camera it is about."""
    named = type(error)(f"camera {camera!r}: {error}")
    named.__cause__ = error.__cause__ or error
    return named


class Feed:
    """One camera's source, queues, sink and counters; `fail` ends it alone."""

    def __init__(self, camera: CameraConfig, source: FileSource | LiveSource, plan: RunPlan) -> None:
        self.camera, self.source, self.plan = camera, source, plan
        self.is_live = isinstance(source, LiveSource)
        self.events = source.events if isinstance(source, LiveSource) else EventLog()
        options = camera.options
        # the latency of every feed is measured; only a live feed's frames are ever dropped
        self.control = LiveControl(options.max_latency, self.events)
        depth = max(options.queue_size, 2 * plan.batch)
        self.frames: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.restored: queue.Queue[Any] = queue.Queue(maxsize=plan.batch if self.is_live else depth)
        self.packets: queue.SimpleQueue[Any] = queue.SimpleQueue()  # a file's audio/subtitles
        self.input_stop = threading.Event()  # end the input now; what is queued is still written
        self.dead = threading.Event()  # failed: its threads stop, its output is kept as partial
        self.error: BaseException | None = None
        self.frames_in = self.frames_out = 0
        self.restore_done = False  # (Restore thread only) its end marker went to the Sink
        self.sink: FileSink | SegmentSink | None = None
        self.output: Path | None = None
        self.completed = False
        self.interrupted = False  # its input was ended by `cancel`, not by itself

    @property
    def name(self) -> str:
        return self.camera.name

    def stop_input(self) -> None:
        self.input_stop.set()
        if isinstance(self.source, LiveSource):
            self.source.stop()

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
            if not isinstance(error, VsrError):
                log.debug("camera %r failed", self.name, exc_info=error)
        self.dead.set()
        self.stop_input()

    def report(self) -> FeedReport:
        """What happened to this feed; once every thread of the run has ended."""
        self.control.finish()
        source, counts = self.source, self.events.counts
        if self.error is not None:
            error = (
                str(self.error)
                if isinstance(self.error, VsrError)
                else f"internal error ({type(self.error).__name__}: {self.error}); run again with --debug and report it"
            )
            ended_by = f"failed: {error}"
        else:
            error = None
            if isinstance(source, LiveSource) and source.end_reason:
                ended_by = source.end_reason  # it gave up (or reconnecting is off)
            elif self.interrupted or isinstance(source, LiveSource):
                ended_by = "interrupted"  # a live source ends otherwise only when stopped
            else:
                ended_by = "end of file"
        connections = source.connections if isinstance(source, LiveSource) else 1
        sink = self.sink
        return FeedReport(
            name=self.name,
            input=redact(self.camera.url),
            output=str(self.output) if self.output is not None else None,
            segments=[str(p) for p in sink.segments] if isinstance(sink, SegmentSink) else [],
            completed=self.completed,
            live=self.is_live,
            ended_by=ended_by,
            error=error,
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            frames_dropped=self.control.dropped,
            dropped_queue_full=self.control.dropped_full,
            dropped_late=self.control.dropped_late,
            connections=connections,
            disconnects=counts["disconnected"],
            reconnects=max(0, connections - 1),
            reconnect_failures=counts["reconnect_failed"] + counts["connect_failed"],
            latency=self.control.latency(),
            input_size=self.plan.restore.input_size,
            output_size=self.plan.restore.output_size,
            events=self.events.events(),
            notes=list(self.plan.notes) + source.run_notes() + (list(sink.notes) if sink is not None else []),
        )


def open_feed(camera: CameraConfig, model: LoadedModel) -> Feed:
    """Open ``camera``'s input (a live one connects now) and plan its run with ``model``."""
    options = camera.options
    try:
        check_paths(camera.url, camera.output, overwrite=options.overwrite)
        source = open_source(camera.url, options)
    except VsrError as error:
        raise _about(camera.name, error) from None
    try:
        plan = make_plan(source.info, options, model)
        bad = incompatible_streams(camera.output.suffix, source.passthrough)
        if bad:
            raise ConfigError(f"{camera.output.suffix} cannot carry {'; '.join(bad)}")
        if options.segment is not None and source.passthrough:
            raise ConfigError(
                "segment writes video only: this input has audio/subtitle streams to copy; "
                "write one file instead"
            )
    except VsrError as error:
        source.close()
        raise _about(camera.name, error) from None
    except BaseException:
        source.close()
        raise
    return Feed(camera, source, plan)
