"""`Feed`: one camera of a `vsr watch` run: its source, plan, queues, sink, counters and report.

A `Feed` exists from the start of the run; `Feed.open` (on the feed's own Source thread) opens
its input and plans it as `vsr upscale` would, with the run's shared model. A live input is
connected with its own reconnect policy: a camera that is down at the start is retried while
the others record, and is planned from its first frame when it comes up (``plan`` is None until
then). Its `RestoreStage` (made by the Restore thread at its first frame, on the run's shared
backend) holds the feed's own state of the optional Restore steps. `Feed.fail` ends this feed
alone (`vsr.pipeline.watch`).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from pathlib import Path
from typing import Any

from vsr.errors import Cancelled, ConfigError, InputError, VsrError
from vsr.media import FileSink, FileSource, incompatible_streams
from vsr.media.live import EventLog, LiveSource
from vsr.media.live_input import redact
from vsr.media.segments import SegmentSink
from vsr.models import LoadedModel
from vsr.pipeline.live import LiveControl, open_source
from vsr.pipeline.plan import RunPlan, make_plan
from vsr.pipeline.restore import RestoreStage
from vsr.pipeline.watch_config import CameraConfig
from vsr.pipeline.watch_report import FeedReport

__all__ = ["Feed"]

log = logging.getLogger(__name__)


class Feed:
    """One camera's source, queues, sink and counters; `fail` ends it alone."""

    def __init__(self, camera: CameraConfig) -> None:
        self.camera = camera
        # set by `open` on the Source thread, before its first frame is queued: whoever takes a
        # frame of this feed from a queue sees them
        self.source: FileSource | LiveSource | None = None
        self.plan: RunPlan | None = None
        self.is_live = camera.is_live
        self.events = EventLog(f"camera {camera.name!r}")  # the LiveSource's too: attempts included
        options = camera.options
        # the latency of every feed is measured; only a live feed's frames are ever dropped
        self.control = LiveControl(options.max_latency, self.events)
        depth = max(options.queue_size, 2 * options.batch)
        self.frames: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.restored: queue.Queue[Any] = queue.Queue(maxsize=options.batch if self.is_live else depth)
        self.packets: queue.SimpleQueue[Any] = queue.SimpleQueue()  # a file's audio/subtitles
        self.input_stop = threading.Event()  # end the input now; what is queued is still written
        self.dead = threading.Event()  # failed: its threads stop, its output is kept as partial
        self.error: BaseException | None = None
        self.frames_in = self.frames_out = 0
        self.restore_done = False  # (Restore thread only) its end marker went to the Sink
        # (Restore thread only) this feed's stage: its still-frame reference, scene state, ...
        self.stage: RestoreStage | None = None
        self.sink: FileSink | SegmentSink | None = None
        self.output: Path | None = None
        self.completed = False
        self.interrupted = False  # its input was ended by `cancel`, not by itself
        self.gave_up_at_start = ""  # why it never came up, when its attempts ran out before

    @property
    def name(self) -> str:
        return self.camera.name

    def stop_input(self) -> None:
        self.input_stop.set()  # the LiveSource's stop event too: ends its connecting or reading

    def open(self, model: LoadedModel) -> bool:
        """Open the input (a live one connects, retrying on its policy) and plan it with ``model``.

        False when there is nothing to run: the attempts ran out (``gave_up_at_start`` says why;
        an event and a log line too) or the input was stopped first. Raises when the input cannot
        be opened or planned for another reason (the feed then fails)."""
        options = self.camera.options
        try:
            source = open_source(self.camera.url, options, events=self.events, stop=self.input_stop)
        except Cancelled:
            self.interrupted = True
            return False
        except InputError as error:
            if not self.is_live or self.events.counts["connected"]:
                raise  # not unreachable: the input itself is wrong
            self.gave_up_at_start = str(error)
            self.events.add("gave_up", f"{error}; nothing was recorded", level=logging.ERROR)
            return False
        try:
            self.plan = _plan(self.camera, source, model)
        except BaseException:
            source.close()
            raise
        self.source = source
        (iw, ih), (ow, oh) = self.plan.restore.input_size, self.plan.restore.output_size
        failed = self.events.counts["connect_failed"]
        # a camera that joins late is news to whoever saw its failed attempts in the log
        log.log(
            logging.WARNING if failed else logging.INFO,
            "camera %r: %s%dx%d -> %dx%d -> %s",
            self.name,
            f"connected after {failed} failed attempts, recording " if failed else "",
            iw,
            ih,
            ow,
            oh,
            self.camera.output,
        )
        return True

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
        gave_up = counts["gave_up"] > 0
        if self.error is not None:
            error = (
                str(self.error)
                if isinstance(self.error, VsrError)
                else f"internal error ({type(self.error).__name__}: {self.error}); run again with --debug and report it"
            )
            ended_by = f"failed: {error}"
        else:
            error = None
            if self.gave_up_at_start:
                ended_by = f"gave up: {self.gave_up_at_start}"
            elif isinstance(source, LiveSource) and source.end_reason:
                # it gave up, or the stream ended with reconnecting off
                ended_by = f"gave up: {source.end_reason}" if gave_up else source.end_reason
            elif source is None:
                failed = counts["connect_failed"]
                ended_by = f"interrupted before it came up ({failed} failed attempts)"
            elif self.interrupted or isinstance(source, LiveSource):
                ended_by = "interrupted"  # a live source ends otherwise only when stopped
            else:
                ended_by = "end of file"
        if isinstance(source, LiveSource):
            connections = source.connections
        else:
            connections = 1 if source is not None else 0
        sink, plan, stage = self.sink, self.plan, self.stage
        return FeedReport(
            name=self.name,
            input=redact(self.camera.url),
            output=str(self.output) if self.output is not None else None,
            segments=[str(p) for p in sink.segments] if isinstance(sink, SegmentSink) else [],
            completed=self.completed,
            live=self.is_live,
            ended_by=ended_by,
            error=error,
            gave_up=gave_up,
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            frames_reused=stage.frames_reused if stage is not None else 0,
            frames_dropped=self.control.dropped,
            dropped_queue_full=self.control.dropped_full,
            dropped_late=self.control.dropped_late,
            connections=connections,
            disconnects=counts["disconnected"],
            reconnects=max(0, connections - 1),
            reconnect_failures=counts["reconnect_failed"] + counts["connect_failed"],
            latency=self.control.latency(),
            input_size=plan.restore.input_size if plan is not None else None,
            output_size=plan.restore.output_size if plan is not None else None,
            events=self.events.events(),
            notes=(list(plan.notes) if plan is not None else [])
            + (stage.run_notes() if stage is not None else [])
            + (source.run_notes() if source is not None else [])
            + (list(sink.notes) if sink is not None else []),
        )


def _plan(camera: CameraConfig, source: FileSource | LiveSource, model: LoadedModel) -> RunPlan:
    """``camera``'s plan from its first frame (``source.info``); a live input's audio that its
    output cannot carry is dropped with a note, as `vsr upscale` does."""
    options = camera.options
    # the denoiser is loaded once for every feed (`WatchRun`), not once per plan
    plan = make_plan(source.info, dataclasses.replace(options, denoise="off", denoiser=None), model)
    if options.denoise_level is not None:
        restore = dataclasses.replace(
            plan.restore, denoise=options.denoise_level, denoise_temporal=options.denoise_temporal == "on"
        )
        plan = dataclasses.replace(plan, restore=restore)
    suffix = camera.output.suffix
    if isinstance(source, LiveSource) and source.passthrough:
        bad = incompatible_streams(suffix, source.passthrough)
        if options.segment is not None or bad:
            source.drop_audio("segmented files carry video only" if options.segment is not None else bad[0])
    bad = incompatible_streams(suffix, source.passthrough)
    if bad:
        raise ConfigError(f"{suffix} cannot carry {'; '.join(bad)}")
    if options.segment is not None and source.passthrough:
        raise ConfigError(
            "segment writes video only: this input has audio/subtitle streams to copy; write one file instead"
        )
    return plan
