"""`CrossFeedRestore`: the Restore thread of `vsr watch`, one model call for several feeds' frames.

Each feed has its own `RestoreStage` on the run's shared backend (`Feed.stage`, made at the
feed's first frame), which holds that feed's state of the optional Restore steps. Per batch:

    feed A frames -> A's stage.prepare --\\                          /-> A's stage.finish -> A's frames
                                          > one model call (concat) <
    feed B frames -> B's stage.prepare --/                          \\-> B's stage.finish -> B's frames

``prepare`` (upload, scene cuts, still frames, denoise) and ``finish`` (temporal smoothing, still
frames taking the previous output, download) see only their own feed's frames, in order, so a
frame of one feed is never compared, reused or blended with another's. Still frames skip the
model call. A feed's state is forgotten at a new connection's first frame (a ``discontinuity``),
as `vsr upscale` does; that frame and the ones after it go through a model call of their own,
after the frames of the connection before. The denoiser's module is loaded once and shared.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from vsr.backends import Backend
from vsr.errors import InputError, VsrError
from vsr.media import Frame
from vsr.models import LoadedModel, load_model
from vsr.models.descriptor import ModelDescriptor
from vsr.pipeline.denoise_pass import DenoisePass, check_denoiser
from vsr.pipeline.live import discontinuity
from vsr.pipeline.restore import RESTORE_STEPS, PreparedBatch, RestoreStage
from vsr.pipeline.stats import StageClock, StageStats
from vsr.pipeline.temporal import flow_for
from vsr.pipeline.watch_config import CameraConfig
from vsr.pipeline.watch_feed import Feed

__all__ = ["CrossFeedRestore", "camera_steps", "load_denoisers"]

_Size = tuple[int, int]


def load_denoisers(cameras: Sequence[CameraConfig]) -> dict[str, LoadedModel]:
    """Each denoiser a camera asks for, loaded once for every camera that uses it."""
    loaded: dict[str, LoadedModel] = {}
    for camera in cameras:
        name = camera.options.denoiser
        if camera.options.denoise_level is None or name is None or name in loaded:
            continue
        try:
            loaded[name] = load_model(name)
            check_denoiser(loaded[name])
        except VsrError as error:
            raise type(error)(f"camera {camera.name!r}: denoiser {error}") from None
    return loaded


def camera_steps(camera: CameraConfig) -> list[str]:
    """The optional Restore steps a camera asked for, as the run's plan lists them."""
    options, steps = camera.options, []
    if options.reuse_still:
        steps.append("still-frame reuse")
    if options.temporal == "on":
        steps.append(f"temporal {options.temporal_strength:g}")
    level = options.denoise_level
    if level is not None:
        steps.append(f"denoise {'auto' if level == 'auto' else f'sigma {level:g}'}")
    return steps


class CrossFeedRestore:
    """Restores frames of several feeds through one backend; `restore` on the Restore thread only.

    ``deliver(feed, frames)`` gets each feed's restored frames, in the feed's order.
    """

    def __init__(
        self,
        backend: Backend,
        descriptor: ModelDescriptor,
        denoisers: dict[str, LoadedModel],
        deliver: Callable[[Feed, list[Frame]], None],
        *,
        compile: bool = False,
    ) -> None:
        self.backend = backend
        self.descriptor = descriptor
        self._deliver = deliver
        # one module per denoiser in the run's device and precision; each feed's pass shares it
        self._denoise = {
            name: DenoisePass(
                model,
                device=backend.device,
                precision=backend.precision,
                sigma=None,
                compile=compile,
                flow=flow_for("auto", backend.device),  # for the feeds that average (for_stream)
            )
            for name, model in denoisers.items()
        }
        # shared by every feed's stage: each adds the optional steps it runs
        self.clocks = {name: StageClock(name) for name in ("upload", "model", "download")}
        self.model_calls = 0
        self.cross_feed_calls = 0  # model calls with frames of more than one feed

    def steps(self, wall_s: float) -> list[StageStats]:
        return [self.clocks[name].stats(wall_s) for name in RESTORE_STEPS if name in self.clocks]

    def restore(self, taken: list[tuple[Feed, Frame]]) -> None:
        """``taken``: frames in the order they were taken, each feed's in its own order."""
        # each feed's frames in runs, a new one at each new connection: its state is forgotten
        # before that run, which goes through the model after the run before it
        runs: dict[Feed, list[list[Frame]]] = {}
        for feed, frame in taken:
            assert feed.plan is not None  # planned before its first frame was queued
            config = feed.plan.restore
            if (frame.width, frame.height) != config.input_size or frame.pix_fmt != config.input_pix_fmt:
                feed.fail(
                    InputError(
                        f"frame {frame.index} changed to {frame.width}x{frame.height} {frame.pix_fmt} "
                        f"mid-stream (the feed started as {config.input_size[0]}x{config.input_size[1]} "
                        f"{config.input_pix_fmt}); split the input at that point"
                    )
                )
                continue
            feed_runs = runs.setdefault(feed, [])
            if not feed_runs or discontinuity(frame):
                feed_runs.append([])
            feed_runs[-1].append(frame)
        for turn in range(max((len(r) for r in runs.values()), default=0)):
            # frames of one input and output size share a model call; a feed has one size
            groups: dict[tuple[_Size, _Size], dict[Feed, list[Frame]]] = {}
            for feed, feed_runs in runs.items():
                if turn < len(feed_runs) and not feed.dead.is_set():
                    assert feed.plan is not None
                    config = feed.plan.restore
                    groups.setdefault((config.input_size, config.output_size), {})[feed] = feed_runs[turn]
            for parts in groups.values():
                live = {feed: frames for feed, frames in parts.items() if not feed.dead.is_set()}
                if live:
                    self._restore_group(live)

    def _restore_group(self, parts: dict[Feed, list[Frame]]) -> None:
        started = time.perf_counter()
        with torch.inference_mode():
            prepared: list[tuple[Feed, RestoreStage, PreparedBatch]] = []
            for feed, frames in parts.items():
                stage = self._stage(feed)
                if discontinuity(frames[0]):
                    stage.reset_state()  # a new connection: nothing of the last one is reused or blended
                prepared.append((feed, stage, stage.prepare(frames)))
            # still frames skip the model: the others of every feed go into the one call
            inputs = [batch.model_input for _, _, batch in prepared if batch.model_input is not None]
            restored: torch.Tensor | None = None
            if inputs:
                with self.clocks["model"].busy(sum(x.shape[0] for x in inputs)):
                    # the stages share the backend, sizes and tiling: any of them runs the call
                    restored = prepared[0][1].restore_rgb(
                        inputs[0] if len(inputs) == 1 else torch.cat(inputs)
                    )
                    if restored.device.type == "cuda":
                        torch.cuda.synchronize(restored.device)  # so the clocks split device time honestly
                self.model_calls += 1
                self.cross_feed_calls += int(len(inputs) > 1)
            outputs, offset = [], 0
            for feed, stage, batch in prepared:
                own = None
                if batch.model_input is not None:
                    assert restored is not None
                    own = restored[offset : offset + batch.model_frames]
                    offset += batch.model_frames
                outputs.append((feed, stage.finish(batch, own)))
        elapsed = time.perf_counter() - started
        for feed, done in outputs:
            feed.control.restored(elapsed, len(done))
            self._deliver(feed, done)

    def _stage(self, feed: Feed) -> RestoreStage:
        if feed.stage is None:
            assert feed.plan is not None
            options = feed.camera.options
            denoiser = (
                self._denoise.get(options.denoiser or "") if options.denoise_level is not None else None
            )
            feed.stage = RestoreStage(
                self.backend, self.descriptor, feed.plan.restore, denoiser=denoiser, clocks=self.clocks
            )
        return feed.stage
