"""The Restore stage: decoded planes in, restored planes out, all the work on one device.

Per batch: upload the planes as they were decoded -> YUV->RGB with the input's matrix and range ->
[scene cuts, still frames] -> [denoise] -> SR model through the backend (padded to the model's size
multiple, tiled if asked) -> exact final resize or crop to the output size -> [temporal smoothing]
-> RGB->YUV for the output pixel format -> download. The bracketed steps are optional and keep
per-stream state (`vsr.pipeline.temporal`), fed the frames of each batch in order.

A `RestoreStage` is one stream's: `__call__` runs a batch through every step. The steps before
the model (`prepare`) and after it (`finish`) are public too, so that `vsr watch` can run one
model call on the prepared frames of several streams, each stream keeping its own state in its
own stage (`vsr.pipeline.watch`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from vsr.backends.base import Backend
from vsr.backends.transfer import HostTransfer
from vsr.errors import InputError
from vsr.media.color import ColorDescription
from vsr.media.frame import Frame
from vsr.models.descriptor import LoadedModel, ModelDescriptor
from vsr.ops.color import planes_to_rgb, rgb_to_planes
from vsr.ops.resize import resize
from vsr.ops.tiling import pad_to_multiple, run_tiled
from vsr.pipeline.denoise_pass import DenoisePass, denoise_pass_for
from vsr.pipeline.options import DEFAULT_TEMPORAL_STRENGTH
from vsr.pipeline.regions import RegionPlan, paste_tiles, regions_for
from vsr.pipeline.sample_format import sample_format
from vsr.pipeline.stats import StageClock
from vsr.pipeline.temporal import CutDetector, FlowMethod, StillFrames, TemporalSmoother, flow_for

__all__ = ["RESTORE_STEPS", "PreparedBatch", "RestoreConfig", "RestoreStage", "restore_rgb", "sample_format"]

# the steps a Restore stage times, in the order a frame goes through them
RESTORE_STEPS = ("upload", "analyse", "denoise", "model", "temporal", "download")


@dataclass(frozen=True, kw_only=True)
class RestoreConfig:
    input_size: tuple[int, int]  # (width, height) of decoded frames
    input_pix_fmt: str
    input_color: ColorDescription  # resolved: the matrix and range the decoder's samples use
    output_size: tuple[int, int]  # (width, height) the encoder gets
    output_pix_fmt: str
    output_color: ColorDescription  # resolved
    tile: int = 0
    tile_overlap: int = 0
    temporal: bool = False
    temporal_strength: float = DEFAULT_TEMPORAL_STRENGTH
    temporal_flow: FlowMethod = "auto"  # the motion estimator: auto (by device), dis or torch
    reuse_still: bool = False
    # with reuse_still: restore only the tiles that changed when that is cheaper (vsr.pipeline.regions)
    reuse_regions: bool = True
    denoise: float | Literal["auto"] | None = None  # None: off; a sigma on the 0..255 scale
    # with denoise: average each frame with the ones before it, motion-compensated, first
    denoise_temporal: bool = False


def restore_rgb(
    run: Callable[[torch.Tensor], torch.Tensor],
    descriptor: ModelDescriptor,
    rgb: torch.Tensor,
    *,
    output_size: tuple[int, int],
    tile: int = 0,
    tile_overlap: int = 0,
) -> torch.Tensor:
    """RGB (N, 3, H, W) in [0, 1] -> ``run``'s model output at ``output_size`` (width, height), clamped.

    The input is padded to the model's size multiple (or tiled, with ``tile > 0``) and the output
    cropped back; a size that is not the model's scale is reached by an exact Lanczos resize. Video
    frames and still images both come through here.
    """
    d = descriptor
    if tile > 0:
        out = run_tiled(run, rgb, scale=d.scale, tile=tile, overlap=tile_overlap, multiple=d.size_multiple)
    else:
        padded, (h, w) = pad_to_multiple(rgb, d.size_multiple)
        out = run(padded)[..., : h * d.scale, : w * d.scale]
    out_w, out_h = output_size
    got_h, got_w = out.shape[-2:]
    if (got_h, got_w) != (out_h, out_w):
        if 0 <= got_h - out_h <= 1 and 0 <= got_w - out_w <= 1:
            out = out[..., :out_h, :out_w]  # an odd size made even for 4:2:x: drop the last row/column
        else:
            out = resize(out, (out_h, out_w), kernel="lanczos")
    return out.clamp_(0.0, 1.0)


@dataclass(frozen=True, eq=False)
class PreparedBatch:
    """One stream's batch after the steps before the model (`RestoreStage.prepare`)."""

    frames: Sequence[Frame]
    model_input: torch.Tensor | None  # RGB of the frames the model runs on whole (denoised); None: none
    new_scene: list[bool]  # one flag per frame of ``model_input``
    still: list[bool]  # one flag per frame: it takes the output of the frame before it
    # per frame: the tiles restored in part (changed-region reuse), else None; their windows stacked
    regions: Sequence[RegionPlan | None] = ()
    windows: torch.Tensor | None = None

    @property
    def model_frames(self) -> int:
        return 0 if self.model_input is None else self.model_input.shape[0]


class RestoreStage:
    """Turns a batch of decoded `Frame`s into restored `Frame`s. Owned by one thread.

    With the optional steps on, it also holds the stream's recent past (the previous frame's
    signature, the reference of still-frame reuse, the previous output for temporal smoothing):
    one stage per stream, fed its frames in order.

    ``denoiser`` is the denoise pre-pass's model, or a `DenoisePass` whose module several streams
    share. ``clocks`` may be shared too: the stage adds the steps it runs to it. With
    ``compile_denoiser`` the denoiser runs through torch.compile builds (`vsr.backends.compiled`).
    """

    def __init__(
        self,
        backend: Backend,
        descriptor: ModelDescriptor,
        config: RestoreConfig,
        *,
        denoiser: LoadedModel | DenoisePass | None = None,
        clocks: dict[str, StageClock] | None = None,
        compile_denoiser: bool = False,
    ) -> None:
        self.backend = backend
        self.descriptor = descriptor
        self.config = config
        self.device = backend.device
        # CUDA: planes go up and come down through pinned memory on a copy stream of their own
        self._transfer = HostTransfer(self.device) if self.device.type == "cuda" else None
        self._in_fmt = sample_format(config.input_pix_fmt, config.input_color)
        self._out_fmt = sample_format(config.output_pix_fmt, config.output_color)
        self._denoise = (
            None
            if config.denoise is None
            else denoise_pass_for(
                denoiser,
                config.denoise,
                temporal=config.denoise_temporal,
                flow=flow_for(config.temporal_flow, backend.device),
                backend=backend,
                compile=compile_denoiser,
            )
        )
        self._temporal = (
            TemporalSmoother(config.temporal_strength, flow=flow_for(config.temporal_flow, self.device))
            if config.temporal
            else None
        )
        self._still = StillFrames() if config.reuse_still else None
        self._regions = (
            regions_for(descriptor, config.input_size, config.output_size)
            if config.reuse_still and config.reuse_regions and not (config.temporal or config.tile)
            else None  # temporal smoothing changes every pixel anyway; tiles already split the frame
        )
        # cuts matter to the steps that keep a scene's state: temporal smoothing, the auto sigma and
        # the denoiser's motion-compensated average
        needs_cuts = self._temporal is not None or (
            self._denoise is not None and (self._denoise.sigma is None or self._denoise.temporal)
        )
        self._cuts = CutDetector() if needs_cuts else None
        self._last_output: torch.Tensor | None = None  # kept only for still-frame reuse
        self._analyse = needs_cuts or self._still is not None
        used = {
            "analyse": self._analyse,
            "denoise": self._denoise is not None,
            "temporal": self._temporal is not None,
        }
        self.steps = [name for name in RESTORE_STEPS if used.get(name, True)]
        self.clocks = {} if clocks is None else clocks
        for name in self.steps:
            self.clocks.setdefault(name, StageClock(name))

    @property
    def frames_reused(self) -> int:
        return self._still.reused if self._still is not None else 0

    @property
    def frames_partial(self) -> int:
        return self._regions.partial if self._regions is not None else 0

    @property
    def pixels_reused(self) -> float:
        """The share of output pixels that came from a previous output: still frames and kept tiles."""
        seen = self._still.seen if self._still is not None else 0
        if not seen:
            return 0.0
        kept = self._regions.pixels_reused if self._regions is not None else 0
        width, height = self.config.input_size
        return (self.frames_reused + kept / (width * height)) / seen

    @property
    def scene_cuts(self) -> int:
        return self._cuts.cuts if self._cuts is not None else 0

    def run_notes(self) -> list[str]:
        """What the optional steps saw, for the run summary."""
        notes = []
        if self._still is not None:
            seen = self._still.seen
            share = f" ({self._still.reused / seen:.1%})" if seen else ""
            notes.append(
                f"still-frame reuse: {self._still.reused} of {seen} frames took the previous output{share}"
            )
            if self._regions is not None and seen:
                notes.append(self._regions.note(seen))
        if self._denoise is not None and (note := self._denoise.run_note()):
            notes.append(note)
        builds = [
            c
            for c in (getattr(self.backend, "compiled", None), self._denoise and self._denoise.compiled)
            if c
        ]
        if builds:
            shapes = sum(c.built for c in builds)
            seconds = sum(c.build_seconds for c in builds)
            failed = " (a build failed: the rest ran eagerly)" if any(c.failed for c in builds) else ""
            notes.append(f"torch.compile: {shapes} input shape(s) built in {seconds:.1f} s{failed}")
        return notes

    def reset_state(self) -> None:
        """Forget the stream's past (after a reconnect or a seek): the next frame starts a scene."""
        for part in (self._cuts, self._still, self._regions, self._temporal, self._denoise):
            if part is not None:
                part.reset()
        self._last_output = None

    def model_output_size(self) -> tuple[int, int]:
        width, height = self.config.input_size
        return width * self.descriptor.scale, height * self.descriptor.scale

    def __call__(self, frames: Sequence[Frame]) -> list[Frame]:
        if not frames:
            return []
        with torch.inference_mode():
            batch = self.prepare(frames)
            restored = None
            if batch.model_input is not None:
                started = time.perf_counter()
                with self.clocks["model"].busy(batch.model_frames):
                    restored = self.restore_rgb(batch.model_input)
                    self._sync()
                if self._regions is not None:
                    self._regions.observe("whole", time.perf_counter() - started, batch.model_frames)
            return self.finish(batch, restored)

    def prepare(self, frames: Sequence[Frame]) -> PreparedBatch:
        """The steps before the model: upload, [scene cuts, still frames], [denoise].

        The stream's frames in order, each batch once, then `finish` with the model's output for
        ``model_input`` (`restore_rgb`, or a slice of a call that ran several streams' inputs)."""
        for frame in frames:
            if (
                frame.width,
                frame.height,
            ) != self.config.input_size or frame.pix_fmt != self.config.input_pix_fmt:
                raise InputError(
                    f"frame {frame.index} changed to {frame.width}x{frame.height} {frame.pix_fmt} mid-stream "
                    f"(the stream started as {self.config.input_size[0]}x{self.config.input_size[1]} "
                    f"{self.config.input_pix_fmt}); split the input at that point"
                )
        n = len(frames)
        with torch.inference_mode():
            with self.clocks["upload"].busy(n):
                rgb = self.to_rgb(frames)
            new_scene, still = [False] * n, [False] * n
            regions: list[RegionPlan | None] = [None] * n
            if self._analyse:
                with self.clocks["analyse"].busy(n):
                    new_scene = self._cuts.update(rgb) if self._cuts is not None else new_scene
                    still = self._still.update(rgb) if self._still is not None else still
                    regions = [None if s else self._plan_regions(rgb[k : k + 1]) for k, s in enumerate(still)]
            run = [k for k in range(n) if not still[k]]
            if not run:
                return PreparedBatch(frames=frames, model_input=None, new_scene=[], still=still)
            x = rgb if len(run) == n else rgb[run]
            scenes = [new_scene[k] for k in run]
            if self._denoise is not None:
                with self.clocks["denoise"].busy(len(run)):
                    x = self._denoise(x, scenes)
            if self._regions is None or all(regions[k] is None for k in run):
                return PreparedBatch(frames=frames, model_input=x, new_scene=scenes, still=still)
            # frames restored in part give their windows; the others stay the model's whole input
            whole, windows = self._regions.split([regions[k] for k in run], x)
        return PreparedBatch(
            frames=frames,
            model_input=x[whole] if whole else None,
            new_scene=[scenes[j] for j in whole],
            still=still,
            regions=regions,
            windows=windows,
        )

    def _plan_regions(self, frame: torch.Tensor) -> RegionPlan | None:
        return self._regions.plan(frame) if self._regions is not None else None

    def finish(self, batch: PreparedBatch, restored: torch.Tensor | None) -> list[Frame]:
        """The steps after the model: [temporal smoothing], [still-frame reuse], download.

        ``restored`` is the model's output for ``batch.model_input`` at the output size (None when
        there was none to run)."""
        with torch.inference_mode():
            if restored is not None and self._temporal is not None:
                assert batch.model_input is not None
                with self.clocks["temporal"].busy(batch.model_frames):
                    restored = self._temporal(batch.model_input, restored, batch.new_scene)
                    self._sync()
            if self._still is not None:
                restored = self._with_reused(restored, batch)
            assert restored is not None
            with self.clocks["download"].busy(len(batch.frames)):
                return self.to_frames(batch.frames, restored)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # so the clocks split device time honestly

    def _with_reused(self, restored: torch.Tensor | None, batch: PreparedBatch) -> torch.Tensor:
        """The batch's outputs in order: a still frame takes the output shown for the frame before it,
        a frame restored in part that output with its recomputed tiles pasted in."""
        windows = None
        if batch.windows is not None:
            assert self._regions is not None
            with self.clocks["model"].busy(sum(bool(p and p.windows) for p in batch.regions)):
                windows = self._regions.restore_windows(self.backend.run, batch.windows, self._sync)
        rows, j, w, last = [], 0, 0, self._last_output
        cut = False  # is ``last`` a row of ``restored`` (not a tensor of its own)
        plans = batch.regions or [None] * len(batch.still)
        for is_still, plan in zip(batch.still, plans, strict=True):
            if plan is not None:
                assert last is not None  # a frame is restored in part only once one ran whole
                if plan.windows:
                    assert windows is not None
                    last = paste_tiles(last, windows[w : w + len(plan.windows)], plan, self.descriptor.scale)
                    w += len(plan.windows)
                    cut = False
            elif not is_still:
                assert restored is not None
                last, cut = restored[j : j + 1], True
                j += 1
            assert last is not None  # StillFrames flags a frame only once a reference has run
            rows.append(last)
        # a row of the batch is copied, so that the batch is not kept alive with it; a pasted output
        # or the one kept already is a tensor of its own (nothing writes into them: pasting copies)
        self._last_output = last.clone() if cut and last is not None else last
        return rows[0] if len(rows) == 1 else torch.cat(rows)

    def to_rgb(self, frames: Sequence[Frame]) -> torch.Tensor:
        planes = []
        for i in range(len(frames[0].planes)):
            arrays = [f.planes[i] for f in frames]
            if self._transfer is not None:
                planes.append(self._transfer.upload(arrays))
            else:
                planes.append(torch.from_numpy(np.stack(arrays)).to(self.device))
        return planes_to_rgb(tuple(planes), self._in_fmt)

    def restore_rgb(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB (N, 3, H, W) -> restored RGB at the output size, clamped to [0, 1]."""
        return restore_rgb(
            self.backend.run,
            self.descriptor,
            rgb,
            output_size=self.config.output_size,
            tile=self.config.tile,
            tile_overlap=self.config.tile_overlap,
        )

    def to_frames(self, frames: Sequence[Frame], rgb: torch.Tensor) -> list[Frame]:
        on_device = rgb_to_planes(rgb, self._out_fmt)
        if self._transfer is not None:
            planes = self._transfer.download(on_device)
        else:
            planes = [p.cpu().numpy() for p in on_device]
        out_w, out_h = self.config.output_size
        return [
            replace(
                frame,
                pix_fmt=self.config.output_pix_fmt,
                width=out_w,
                height=out_h,
                planes=tuple(p[k] for p in planes),
                color=self.config.output_color,
            )
            for k, frame in enumerate(frames)
        ]
