"""`WatchRun`: several feeds through one model on one device (`vsr watch cameras.toml`).

    feed 1: Source thread -> queue --\\                        /-> queue -> Sink thread -> output 1
    feed 2: Source thread -> queue ---> Restore thread (model) --> queue -> Sink thread -> output 2
    ...                             /    up to `batch` frames    \\

Each feed is a `LiveSource` or `FileSource` (`open_source`, as for `vsr upscale`) with its own
reconnect policy, opened on its own Source thread: a camera that is down when the run starts is
retried on that policy while the others record, and joins (planned from its first frame, the
model shared) when it comes up; one whose attempts run out ends with nothing written. A live feed's queue drops its oldest frame when full and Restore drops its
frames that are too late (`LiveControl`); a file's queue blocks, so every frame is kept. The one
Restore thread takes frames from the queues in turn, up to ``batch``; frames of the same input
size go through the model in one call, whichever feed they come from (each feed's own colour
conversion before and after). Outputs keep each feed's own timestamps, as `vsr upscale` writes
them.

The optional Restore steps (still-frame reuse, temporal smoothing, denoise) are per camera, and
so is their state: each feed has its own `RestoreStage` on the shared backend, forgotten when the
feed reconnects (`vsr.pipeline.watch_restore`).

Feeds are independent: a camera whose reconnect attempts run out (at the start or mid-run), a
file that ends or cannot be opened, an output that cannot be written ends that feed alone (its output finished, or kept under its partial
name after an error) while the others go on. Only a failure of the shared model stops every
feed. The first `cancel` (Ctrl-C, SIGTERM) ends every input and finishes every output; a second
stops at once, keeping partial files.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from vsr.backends import BackendOptions, create_backend, resolve_device, resolve_precision
from vsr.backends.compiled import auto_compile
from vsr.errors import Cancelled, VsrError
from vsr.media import FileSink, Frame
from vsr.media.live_input import redact
from vsr.media.segments import SegmentSink
from vsr.pipeline.output_paths import check_paths
from vsr.pipeline.plan import resolve_model
from vsr.pipeline.queues import POLL_S, get_while, put_while
from vsr.pipeline.runner import yield_cpu_to_the_model
from vsr.pipeline.watch_config import WatchConfig
from vsr.pipeline.watch_feed import Feed
from vsr.pipeline.watch_report import WatchSummary
from vsr.pipeline.watch_restore import CrossFeedRestore, camera_steps, load_denoisers
from vsr.text import counted

__all__ = ["WatchRun"]

log = logging.getLogger(__name__)

_END = object()  # end of a feed, travels through its queues


class WatchRun:
    """One run of `vsr watch`: construct (checks the outputs, loads the model), then `run()` once.

    Nothing is opened before `run`: each feed's input is opened (connected) on its own thread.
    """

    def __init__(self, config: WatchConfig) -> None:
        self.config = config
        options = config.options
        for camera in config.cameras:  # a usage error stops the run before anything starts
            try:
                check_paths(camera.url, camera.output, overwrite=options.overwrite)
            except VsrError as error:
                raise type(error)(f"camera {camera.name!r}: {error}") from None
        self.device = resolve_device(options.device)
        self.model, self.notes = resolve_model(options.model, options.scale, self.device.type)
        # what every feed's plan chooses too (the torch backend takes the precision as asked)
        self.precision = resolve_precision(options.precision, self.device, self.model.descriptor)
        self.backend_name = options.backend
        self.batch = options.batch
        # feeds are live: eager unless the config asks for builds (vsr.backends.compiled.auto_compile)
        auto, _ = auto_compile(self.device, self.model.descriptor.architecture, None)
        self.compile = options.compile if options.compile is not None else auto
        self.denoisers = load_denoisers(config.cameras)
        self.feeds = [Feed(camera) for camera in config.cameras]
        self._stop = threading.Event()
        self._arrived = threading.Event()  # a Source queued something (or a feed ended)
        self._error: BaseException | None = None
        self._interrupted = self._cancelled = False
        self._turn = 0
        self._restorer: CrossFeedRestore | None = None  # made by `run`, with the backend

    def describe(self) -> list[str]:
        lines = [
            f"model:     {self.model.descriptor.summary()}",
            f"backend:   {self.backend_name} on {self.device} ({self.precision}), "
            f"batch {self.batch} across {counted(len(self.feeds), 'feed')}"
            + (", torch.compile" if self.compile else ""),
        ]
        for feed in self.feeds:
            options = feed.camera.options
            segment, steps = options.segment, camera_steps(feed.camera)
            lines.append(
                f"camera {feed.name}: {redact(feed.camera.url)} -> {feed.camera.output}"
                + (f" (segments of {segment:g} s)" if segment is not None else "")
                + " (size from its first frame)"
                + (f"; {', '.join(steps)}" if steps else "")
            )
        for name, denoiser in self.denoisers.items():
            shown = f" ({name})" if name != denoiser.descriptor.name else ""
            lines.append(f"denoiser:  {denoiser.descriptor.summary()}{shown}")
        lines += [f"note:      {n}" for n in self.notes]
        return lines

    # -- control ---------------------------------------------------------------------------

    def cancel(self) -> None:
        """First call: end every input and finish every output; second: stop at once."""
        if not self._interrupted:
            self._interrupted = True
            for feed in self.feeds:
                feed.stop_input()
            return
        self._cancelled = True
        self._stop.set()

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._stop.set()

    def _alive(self, feed: Feed) -> bool:
        return not self._stop.is_set() and not feed.dead.is_set()

    def _put(self, q: queue.Queue[Any], item: object, feed: Feed) -> bool:
        return put_while(q, item, lambda: self._alive(feed))

    def _get(self, q: queue.Queue[Any], feed: Feed) -> object | None:
        return get_while(q, lambda: self._alive(feed))

    def _feed_thread(self, feed: Feed, target: Callable[[Feed], None], role: str) -> threading.Thread:
        def run() -> None:
            try:
                target(feed)
            except BaseException as error:  # this feed ends; the others go on
                feed.fail(error)
                self._arrived.set()

        return threading.Thread(target=run, name=f"vsr-{role}-{feed.name}", daemon=True)

    # -- stages ----------------------------------------------------------------------------

    def _source_loop(self, feed: Feed) -> None:
        if not feed.open(self.model):  # gave up or stopped before it came up: nothing to record
            self._put(feed.frames, _END, feed)
            self._arrived.set()
            return
        assert feed.source is not None
        items = feed.source.items()
        while self._alive(feed):
            if feed.input_stop.is_set():
                feed.interrupted = True
                item: object = _END
            else:
                item = next(items, _END)
            if isinstance(item, Frame):
                feed.frames_in += 1
                if feed.is_live:
                    feed.control.put_newest(feed.frames, item)  # never waits: drops the oldest
                elif not self._put(feed.frames, item, feed):
                    return
                self._arrived.set()
            elif item is _END:
                if feed.is_live:
                    feed.control.put_newest(feed.frames, _END)
                else:
                    self._put(feed.frames, _END, feed)
                self._arrived.set()
                return
            else:
                feed.packets.put(item)

    def _restore_loop(self) -> None:
        while not self._stop.is_set():
            self._arrived.clear()  # before looking, so that a put while looking is not missed
            open_feeds = [f for f in self.feeds if not f.restore_done]
            if not open_feeds:
                return
            taken, ended = self._gather(open_feeds)
            if not taken and not ended:
                self._arrived.wait(POLL_S)
                continue
            assert self._restorer is not None
            self._restorer.restore(taken)
            for feed in ended:
                self._put(feed.restored, _END, feed)

    def _gather(self, feeds: list[Feed]) -> tuple[list[tuple[Feed, Frame]], list[Feed]]:
        """Up to ``batch`` frames, one feed after the other; and the feeds that ended."""
        self._turn = (self._turn + 1) % len(feeds)
        waiting = feeds[self._turn :] + feeds[: self._turn]  # a different feed goes first each time
        taken: list[tuple[Feed, Frame]] = []
        ended: list[Feed] = []
        while waiting and len(taken) < self.batch:
            for feed in list(waiting):
                if len(taken) == self.batch:
                    break
                if feed.dead.is_set():
                    feed.restore_done = True
                    waiting.remove(feed)
                    continue
                try:
                    item = feed.frames.get_nowait()
                except queue.Empty:
                    waiting.remove(feed)
                    continue
                if item is _END:
                    feed.restore_done = True
                    ended.append(feed)
                    waiting.remove(feed)
                elif not (feed.is_live and feed.control.is_late(item, newer_waiting=not feed.frames.empty())):
                    taken.append((feed, item))
        return taken, ended

    def _deliver(self, feed: Feed, frames: list[Frame]) -> None:
        for frame in frames:
            if not self._put(feed.restored, frame, feed):
                return

    def _open_sink(self, feed: Feed) -> FileSink | SegmentSink | None:
        """The feed's output, made at its first item: a camera that never comes up has none."""
        if feed.plan is None or feed.source is None:
            return None
        segment, spec = feed.camera.options.segment, feed.plan.output
        feed.sink = (
            FileSink(feed.camera.output, spec, feed.source.passthrough)
            if segment is None
            else SegmentSink(feed.camera.output, spec, segment)
        )
        return feed.sink

    def _sink_loop(self, feed: Feed) -> None:
        if self.device.type == "cpu":
            yield_cpu_to_the_model()
        # the sink is made on this thread so that the encoder's own threads inherit its priority
        sink: FileSink | SegmentSink | None = None
        try:
            while (item := self._get(feed.restored, feed)) is not None:
                if sink is None:
                    sink = self._open_sink(feed)
                    if sink is None:  # it ended before it came up
                        return
                if isinstance(item, Frame):
                    sink.write_frame(item)
                    feed.frames_out += 1
                    feed.control.written(item)
                while not feed.packets.empty():
                    sink.write_packet(feed.packets.get_nowait())
                if item is _END:
                    feed.output = sink.close()  # this feed is done: finished now, not at the run's end
                    feed.completed = True
                    return
        except BaseException:
            if sink is not None:
                feed.output = sink.abort()
            raise
        if sink is not None:
            feed.output = sink.abort()  # stopped, or the feed failed elsewhere

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> WatchSummary:
        # made before any feed is open: a model or device that cannot run stops the run at once
        backend = create_backend(
            self.backend_name,
            self.model,
            BackendOptions(device=self.device, precision=self.precision, compile=self.compile),
        )
        self._restorer = CrossFeedRestore(
            backend, self.model.descriptor, self.denoisers, self._deliver, compile=self.compile
        )
        started = time.perf_counter()
        threads = [threading.Thread(target=self._guarded_restore, name="vsr-restore", daemon=True)]
        for feed in self.feeds:
            threads.append(self._feed_thread(feed, self._source_loop, "source"))
            threads.append(self._feed_thread(feed, self._sink_loop, "sink"))
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            try:  # join with a timeout so that Ctrl-C reaches this (main) thread promptly
                for thread in threads:
                    thread.join(timeout=POLL_S)
            except KeyboardInterrupt:
                self.cancel()
        wall = time.perf_counter() - started
        self._close_sources()
        if self._error is not None or self._cancelled:
            raise self._final_error()
        return self._summary(wall)

    def _guarded_restore(self) -> None:
        try:
            self._restore_loop()
        except BaseException as error:  # the shared model failed: every feed stops
            self._fail(error)

    def _close_sources(self) -> None:
        for feed in self.feeds:
            if feed.source is not None:
                feed.source.close()

    def _final_error(self) -> BaseException:
        kept = [f"{feed.name}: {feed.output}" for feed in self.feeds if feed.output is not None]
        note = f"; outputs kept: {', '.join(kept)}" if kept else "; nothing was encoded"
        if self._error is None:
            return Cancelled(f"interrupted{note}")
        if isinstance(self._error, VsrError):
            error = type(self._error)(f"{self._error}{note}")
            error.__cause__ = self._error.__cause__ or self._error
            return error
        log.error("internal error in the shared Restore stage%s", note)
        return self._error

    def _summary(self, wall: float) -> WatchSummary:
        restorer = self._restorer
        assert restorer is not None
        return WatchSummary(
            config=str(self.config.path),
            feeds=[feed.report() for feed in self.feeds],
            model=self.model.descriptor.summary(),
            backend=self.backend_name,
            device=str(self.device),
            precision=self.precision,
            batch=self.batch,
            wall_s=round(wall, 3),
            model_calls=restorer.model_calls,
            cross_feed_calls=restorer.cross_feed_calls,
            frames_restored=restorer.clocks["model"].frames,
            restore_steps=restorer.steps(wall),
            interrupted=self._interrupted,
            notes=list(self.notes),
        )
