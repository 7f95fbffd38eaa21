"""`Pipeline`: Source thread -> bounded queue -> Restore thread -> bounded queue -> Sink thread.

Backpressure comes from the bounded queues, so memory stays flat however long the video is. Audio
and subtitle packets go from the Source straight to the Sink on a queue of their own (unbounded,
but the Source can only run ahead of the Sink by the few frames the video queues hold, so it only
ever holds that much audio). Every blocking queue operation wakes up regularly to look at the stop
event, so no stage can hang on a dead neighbour: the first failure anywhere sets it, every stage
returns, the Sink keeps what was encoded under the temporary name, and `run` re-raises that first
failure once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsr.errors import Cancelled, ConfigError, VsrError
from vsr.media import Frame, incompatible_streams
from vsr.media.hls import HlsSink, check_hls_segment
from vsr.media.live import EventLog, LiveSource
from vsr.media.outputs import Sink, open_sink, output_kind
from vsr.media.publish import RtspSink, is_publish_url, publish_spec
from vsr.media.segments import SegmentSink
from vsr.models import LoadedModel
from vsr.pipeline.live import LiveControl, Pacer, discontinuity, live_report, open_source
from vsr.pipeline.options import UpscaleOptions
from vsr.pipeline.output_paths import check_paths
from vsr.pipeline.plan import RunPlan, make_plan
from vsr.pipeline.queues import POLL_S, get_while, put_while
from vsr.pipeline.restore import RestoreStage
from vsr.pipeline.stats import LiveReport, RunSummary, StageClock

__all__ = ["Pipeline", "Progress"]

log = logging.getLogger(__name__)

_END = object()  # end of stream, travels through the frame queues


def yield_cpu_to_the_model() -> None:
    """Lower this thread's scheduling priority (Linux: per thread; inherited by threads it starts).

    When the model runs on the CPU it shares the cores with the encoder. The model's parallel
    regions split work evenly across its threads and wait for the slowest, so every time the
    encoder preempts one of them the whole layer stalls. At a lower priority the encoder runs in
    the gaps instead; if it falls behind, the bounded queue fills and backpressure gives it the
    CPU. The A/B in docs/BENCHMARKS.md shows no difference beyond run-to-run noise on 2 cores.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # not Linux, or not permitted: run at normal priority
        log.debug("could not lower the encoder thread's priority")


@dataclass(frozen=True)
class Progress:
    frames_done: int
    frames_total: int | None  # None when the container does not say
    elapsed_s: float

    @property
    def fps(self) -> float:
        return self.frames_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.frames_total or not self.frames_done:
            return None
        return max(0.0, (self.frames_total - self.frames_done) / self.fps)


class Pipeline:
    """One run of `vsr upscale` for a file or a live input. Construct (probes/connects and plans),
    then `run()` once.

    Live mode (``options.live``; by default on for live inputs) drops frames to bound latency
    (`vsr.pipeline.live`). A live input's run ends when its reconnect policy gives up, or on
    `cancel`: the first cancel stops the input and finishes the recording normally (the summary
    says ``ended_by="interrupted"``), a second one stops every stage at once like for a file.
    """

    def __init__(
        self,
        input_path: str | Path,
        output_path: str | Path,
        options: UpscaleOptions | None = None,
        *,
        model: LoadedModel | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.options = options or UpscaleOptions()
        self.input, self.output_path = str(input_path), Path(output_path)
        self.output = str(output_path)  # an RTSP URL would lose its "//" as a Path
        self.input_path = Path(input_path)
        self._publish = is_publish_url(self.output)
        if not self._publish:
            check_paths(self.input_path, self.output_path, overwrite=self.options.overwrite)
            if output_kind(self.output).playlist:
                check_hls_segment(self.options.segment)
        self.source = open_source(self.input, self.options)
        is_live = isinstance(self.source, LiveSource)
        if self.options.reuse_still is None:  # by default a camera's unchanged frames skip the model
            self.options = dataclasses.replace(self.options, reuse_still=is_live)
        self.events = self.source.events if isinstance(self.source, LiveSource) else EventLog()
        live_mode = self.options.live if self.options.live is not None else is_live
        self.live = LiveControl(self.options.max_latency, self.events) if live_mode else None
        self._pacer = Pacer() if live_mode and not is_live else None
        self._interrupted = False
        try:
            self.plan: RunPlan = make_plan(self.source.info, self.options, model)
            kind = output_kind(self.output)
            if self._publish:  # the plan shows what the publish encodes (its preset)
                self.plan = dataclasses.replace(self.plan, output=publish_spec(self.plan.output))
            file_segments = self.options.segment is not None and not kind.playlist and not self._publish
            if is_live and self.source.passthrough:
                # a live input's audio is kept where the output can carry it, else dropped with a note
                bad = incompatible_streams(kind, self.source.passthrough)
                if file_segments or bad:
                    self.source.drop_audio("segmented files carry video only" if file_segments else bad[0])
            bad = incompatible_streams(kind, self.source.passthrough)
            if bad:
                raise ConfigError(f"{kind.ext} cannot carry {'; '.join(bad)}")
            if file_segments and self.source.passthrough:
                raise ConfigError(
                    "--segment writes video only: this input has audio/subtitle streams to copy; "
                    "write one file instead"
                )
        except BaseException:
            self.source.close()
            raise
        self._on_progress = on_progress
        self._stop = threading.Event()
        self._cancelled = False
        self._error: BaseException | None = None
        self._error_lock = threading.Lock()
        depth = max(self.options.queue_size, 2 * self.plan.batch)
        self._frames_q: queue.Queue[Any] = queue.Queue(maxsize=depth)
        # live: a short queue to the Sink, so that a slow encoder cannot build a backlog of latency
        restored_depth = self.plan.batch if self.live is not None else depth
        self._restored_q: queue.Queue[Any] = queue.Queue(maxsize=restored_depth)
        self._packets_q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.clocks = {name: StageClock(name) for name in ("decode", "restore", "encode")}
        self.frames_in = 0
        self.frames_out = 0
        self.packets_out = 0
        self._started = 0.0
        self._sink: Sink | None = None

    # -- control ---------------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask every stage to stop (safe from a signal handler or another thread)."""
        if isinstance(self.source, LiveSource) and not self._interrupted:
            # the normal end of a live run: what is queued is finished and the file completed
            self._interrupted = True
            self.source.stop()
            return
        self._cancelled = True
        self._stop.set()

    def _fail(self, exc: BaseException) -> None:
        with self._error_lock:
            if self._error is None:
                self._error = exc
        self._stop.set()

    def _put(self, q: queue.Queue[Any], item: object) -> bool:
        return put_while(q, item, self._running)

    def _get(self, q: queue.Queue[Any]) -> object | None:
        return get_while(q, self._running)

    def _running(self) -> bool:
        return not self._stop.is_set()

    def _guarded(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # re-raised by run(); a thread must never die silently
                self._fail(exc)

        return run

    # -- stages ----------------------------------------------------------------------------

    def _source_loop(self) -> None:
        clock = self.clocks["decode"]
        items = self.source.items()
        while not self._stop.is_set():
            started = time.perf_counter()
            item = next(items, _END)
            if isinstance(item, Frame):
                clock.add(time.perf_counter() - started, 1)
                self.frames_in += 1
                if self._pacer is not None and not self._pacer.wait(item, self._stop):
                    return
                if self.live is not None:
                    self.live.put_newest(self._frames_q, item)  # never waits: drops the oldest
                elif not self._put(self._frames_q, item):
                    return
            elif item is _END:
                clock.add(time.perf_counter() - started)
                if self.live is not None:
                    self.live.put_newest(self._frames_q, _END)
                else:
                    self._put(self._frames_q, _END)
                return
            else:
                clock.add(time.perf_counter() - started)
                self._packets_q.put(item)

    def _restore_loop(self, stage: RestoreStage) -> None:
        batch: list[Frame] = []
        while True:
            item = self._get(self._frames_q)
            if item is None:
                return
            if isinstance(item, Frame):
                if self.live is not None and self.live.is_late(
                    item, newer_waiting=not self._frames_q.empty()
                ):
                    continue
                if discontinuity(item):
                    # a new connection: finish the old stream's frames, then forget its state
                    if batch and not self._restore_batch(stage, batch):
                        return
                    batch = []
                    stage.reset_state()
                batch.append(item)
            if batch and (len(batch) == self.plan.batch or item is _END):
                if not self._restore_batch(stage, batch):
                    return
                batch = []
            if item is _END:
                self._put(self._restored_q, _END)
                return

    def _restore_batch(self, stage: RestoreStage, batch: list[Frame]) -> bool:
        started = time.perf_counter()
        with self.clocks["restore"].busy(len(batch)):
            restored = stage(batch)
        if self.live is not None:
            self.live.restored(time.perf_counter() - started, len(batch))
        return all(self._put(self._restored_q, frame) for frame in restored)

    def _sink_loop(self) -> None:
        if self.plan.device.type == "cpu":
            yield_cpu_to_the_model()
        # created here so that the encoder's own threads inherit this thread's priority
        sink = self._sink = open_sink(
            self.output,
            self.plan.output,
            self.source.passthrough,
            segment_s=self.options.segment,
            live=isinstance(self.source, LiveSource),
            open_timeout_s=self.options.open_timeout,
        )
        clock = self.clocks["encode"]
        total = self.source.info.frame_count
        while True:
            item = self._get(self._restored_q)
            if item is None:
                return
            with clock.busy(0 if item is _END else 1):
                if isinstance(item, Frame):
                    sink.write_frame(item)
                    self.frames_out += 1
                    if self.live is not None:
                        self.live.written(item)
                self._drain_packets(sink)
            if item is _END:
                return
            if self._on_progress is not None:
                self._on_progress(Progress(self.frames_out, total, time.perf_counter() - self._started))

    def _drain_packets(self, sink: Sink) -> None:
        while True:
            try:
                packet = self._packets_q.get_nowait()
            except queue.Empty:
                return
            sink.write_packet(packet)
            self.packets_out += 1

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> RunSummary:
        plan = self.plan
        try:
            stage = plan.restore_stage()
        except BaseException:
            self.source.close()
            raise
        self._started = time.perf_counter()
        threads = [
            threading.Thread(target=self._guarded(self._source_loop), name="vsr-source", daemon=True),
            threading.Thread(
                target=self._guarded(lambda: self._restore_loop(stage)), name="vsr-restore", daemon=True
            ),
            threading.Thread(target=self._guarded(self._sink_loop), name="vsr-sink", daemon=True),
        ]
        for t in threads:
            t.start()
        self._join(threads)
        wall = time.perf_counter() - self._started
        completed = self._error is None and not self._cancelled
        sink = self._sink
        try:
            if sink is None:  # the sink could not even be created: its error is the one to report
                output = None
            else:
                output = sink.close() if completed else sink.abort()
        except BaseException:
            sink.abort()  # type: ignore[union-attr]
            raise
        finally:
            self.source.close()
        if not completed:
            raise self._final_error(output)
        return self._summary(str(output), wall, stage, sink.notes)

    def _join(self, threads: list[threading.Thread]) -> None:
        # join with a timeout so that Ctrl-C reaches this (main) thread promptly
        while any(t.is_alive() for t in threads):
            try:
                for t in threads:
                    t.join(timeout=POLL_S)
            except KeyboardInterrupt:
                self.cancel()

    def _final_error(self, partial: Path | None) -> BaseException:
        if isinstance(self._sink, RtspSink):
            kept = f"; {self._sink.frames_written} frames were published"
        elif partial is not None:
            kept = f"; the {self.frames_out} frames encoded so far are kept in {partial}"
        else:
            kept = "; nothing was encoded"
        if self._sink is None and isinstance(self._error, VsrError):
            return self._error  # the output could not even be opened: that is the whole story
        if self._error is None:
            return Cancelled(f"interrupted after {self.frames_out} frames{kept}")
        if isinstance(self._error, VsrError):
            err = type(self._error)(f"{self._error}{kept}")
            err.__cause__ = self._error.__cause__ or self._error
            return err
        log.error("internal error after %d frames%s", self.frames_out, kept)
        return self._error

    def _summary(self, output: str, wall: float, stage: RestoreStage, sink_notes: list[str]) -> RunSummary:
        plan, info = self.plan, self.source.info
        stages = [c.stats(wall) for c in self.clocks.values()]
        return RunSummary(
            input=self.input,
            output=output,
            completed=True,
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            wall_s=round(wall, 3),
            fps=round(self.frames_out / wall, 3) if wall > 0 else 0.0,
            stages=stages,
            restore_steps=[c.stats(wall) for c in stage.clocks.values()],
            bottleneck=RunSummary.pick_bottleneck(stages),
            model=plan.model.descriptor.summary(),
            backend=plan.backend,
            device=str(plan.device),
            precision=plan.precision,
            input_size=(info.width, info.height),
            output_size=plan.restore.output_size,
            encoder=plan.output.codec,
            pix_fmt=plan.output.pix_fmt,
            passthrough_packets=self.packets_out,
            frames_reused=stage.frames_reused,
            frames_partial=stage.frames_partial,
            pixels_reused=round(stage.pixels_reused, 4),
            scene_cuts=stage.scene_cuts,
            notes=list(plan.notes) + self.source.run_notes() + list(sink_notes) + stage.run_notes(),
            live=self._live_report(),
            segments=[str(p) for p in self._sink.segments]
            if isinstance(self._sink, SegmentSink | HlsSink)
            else [],
        )

    def _live_report(self) -> LiveReport | None:
        if self.live is None and not isinstance(self.source, LiveSource):
            return None
        if self.live is not None:
            self.live.finish()
        return live_report(
            self.source, self.events, self.live, self.options.max_latency, interrupted=self._interrupted
        )
