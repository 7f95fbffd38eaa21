"""The denoise pre-pass of the Restore stage: a noise-level-conditioned denoiser before SR.

The denoiser (``descriptor.task == "denoise"``, called as ``module(x, sigma)``; `vsr.models.denoise`)
runs on the Restore stage's device in the run's precision. It is called directly rather than
through a `Backend`: backends take one input and a denoiser takes two. The noise level is either
fixed by the user or, with ``auto``, estimated from the frames (`vsr.ops.noise`) on the first frame
of every scene and kept for the frames after it: noise is a property of the camera and the shot,
and one estimate per scene keeps the denoiser's strength from wavering frame to frame.

With ``temporal`` (``--denoise-temporal on``, the default of `vsr upscale`) each frame is first
averaged with the frames before it, motion-compensated, where the motion holds
(`vsr.pipeline.temporal.MotionAverage`), and the denoiser is told the noise left at each pixel (a
per-pixel noise map: lower where frames were averaged, sigma where the picture moved in a way the
flow could not follow). Noise that changes from frame to frame goes, and detail stays: on vtest and
foreman (sigma 15 + H.264 300k, x2) it lifts the gain of the pre-pass from +1.05 / +1.08 to
+1.33 / +1.19 dB Y-PSNR with compact-x2 and from +0.30 / +0.49 to +0.68 / +1.16 with gan-x2, for
1.7-3.1 % of the model's time (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from vsr.backends.base import Backend
from vsr.backends.compiled import CastIO, CompiledShapes
from vsr.errors import ConfigError, ModelError
from vsr.models.descriptor import LoadedModel, Precision
from vsr.ops.noise import estimate_noise_sigma
from vsr.ops.tiling import pad_to_multiple
from vsr.pipeline.temporal import MotionAverage

__all__ = ["AUTO_MIN_SIGMA", "DenoisePass", "check_denoiser", "denoise_pass_for", "denoiser_to_load"]

# With ``auto``, an estimate below this (0..255 scale) is taken as clean video and the denoiser is
# not run: the estimator reads texture as 1.5-5 levels of noise on clean photographs (Kodak24),
# and a denoiser told so would only soften detail the SR model should keep.
AUTO_MIN_SIGMA = 3.0
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def denoiser_to_load(given: str | None) -> str:
    """``--denoiser`` when given, else the built-in denoiser; a `ConfigError` when neither exists."""
    from vsr.models.builtin import builtin_denoiser

    name = given if given is not None else builtin_denoiser()
    if name is None:
        raise ConfigError(
            "--denoise needs a denoiser and this install ships none; pass --denoiser CHECKPOINT (an FFDNet-style model)"
        )
    return name


def check_denoiser(model: LoadedModel) -> None:
    d = model.descriptor
    if d.task != "denoise":
        raise ModelError(
            f"--denoiser {d.name} is a x{d.scale} super-resolution model, not a denoiser; pass a denoiser checkpoint"
        )
    if d.in_channels != 3 or d.out_channels != 3:
        raise ModelError(
            f"--denoiser {d.name} maps {d.in_channels} to {d.out_channels} channels, not RGB to RGB"
        )


class DenoisePass:
    """``__call__(rgb, new_scene)``: ``N x 3 x H x W`` RGB in [0, 1] -> denoised, same size.

    ``sigma`` is the noise level on the 0..255 scale, or None for ``auto``. ``new_scene`` has one
    flag per frame (the stream's frames in order); with ``auto`` a flagged frame is measured anew.
    """

    def __init__(
        self,
        model: LoadedModel,
        *,
        device: torch.device,
        precision: Precision,
        sigma: float | None,
        compile: bool = False,
        temporal: bool | MotionAverage = False,
        flow: Literal["dis", "torch"] = "dis",
    ) -> None:
        check_denoiser(model)
        d = model.descriptor
        self.name = d.name
        self.sigma = sigma
        self.precision: Precision = precision if precision in d.precisions else "fp32"
        self._dtype = _DTYPES[self.precision]
        self._multiple = d.size_multiple
        self._memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        # a private copy in the run precision; the caller's module stays as it was
        module = copy.deepcopy(model.module).eval().requires_grad_(False)
        self._module = module.to(device=device, dtype=self._dtype, memory_format=self._memory_format)
        # torch.compile builds per input shape (vsr.backends.compiled), shared by `for_stream` copies
        self.compiled = (
            CompiledShapes(
                CastIO(self._module, self._dtype, self._memory_format),
                name=d.name,
                memory_format=self._memory_format,
            )
            if compile
            else None
        )
        self._scene_sigma: float | None = None
        self.estimates: list[float] = []  # every auto estimate, 0..255, in stream order
        self._flow: Literal["dis", "torch"] = flow
        # True: the average at its defaults; a `MotionAverage`: that one (tools/sweep_denoise_average.py)
        self._average: MotionAverage | None = None
        if isinstance(temporal, MotionAverage):
            self._average = temporal
        elif temporal:
            self._average = MotionAverage(flow)

    @property
    def temporal(self) -> bool:
        return self._average is not None

    def reset(self) -> None:
        self._scene_sigma = None
        if self._average is not None:
            self._average.reset()

    def for_stream(self, sigma: float | None, *, temporal: bool = False) -> DenoisePass:
        """A pass for another stream through the same module (one copy of the weights on the
        device): its own ``sigma`` (None: auto), motion-compensated averaging or not, and its own
        scene state, estimates and averaging state."""
        other = copy.copy(self)
        other.sigma = sigma
        other._scene_sigma = None
        other.estimates = []
        other._average = MotionAverage(self._flow) if temporal else None
        return other

    def run_note(self) -> str | None:
        """The auto estimates, for the run summary; None with a fixed sigma."""
        if self.sigma is not None:
            return None
        shown = ", ".join(f"{s:g}" for s in self.estimates[:8])
        more = f" and {len(self.estimates) - 8} more" if len(self.estimates) > 8 else ""
        return f"denoise auto: noise sigma {shown}{more} (0..255, one per scene)"

    def levels(self, rgb: Tensor, new_scene: Sequence[bool]) -> list[float]:
        """The noise level (0..255) each frame is denoised at; 0 means left as it is."""
        if self.sigma is not None:
            return [self.sigma] * rgb.shape[0]
        levels = []
        for k in range(rgb.shape[0]):
            if new_scene[k] or self._scene_sigma is None:
                self._scene_sigma = float(estimate_noise_sigma(rgb[k : k + 1])[0]) * 255.0
                self.estimates.append(round(self._scene_sigma, 2))
            levels.append(self._scene_sigma if self._scene_sigma >= AUTO_MIN_SIGMA else 0.0)
        return levels

    def __call__(self, rgb: Tensor, new_scene: Sequence[bool]) -> Tensor:
        levels = self.levels(rgb, new_scene)
        run = [k for k, s in enumerate(levels) if s > 0]
        if not run:
            return rgb
        if self._average is None:
            x = rgb if len(run) == rgb.shape[0] else rgb[run]
            sigma = torch.tensor([levels[k] / 255.0 for k in run], device=rgb.device, dtype=self._dtype)
        else:
            x, sigma = self._averaged(rgb, levels, new_scene, run)
            sigma, _ = pad_to_multiple(sigma, self._multiple)
        padded, (h, w) = pad_to_multiple(x, self._multiple)
        with torch.inference_mode():
            if self.compiled is not None:  # casts included in the build
                y = self.compiled(padded, sigma)[..., :h, :w]
            else:
                padded = padded.to(dtype=self._dtype, memory_format=self._memory_format)
                y = self._module(padded, sigma)[..., :h, :w]
        y = y.to(dtype=rgb.dtype, memory_format=torch.contiguous_format)
        if len(run) == rgb.shape[0]:
            return y
        out = rgb.clone()
        out[run] = y
        return out

    def _averaged(
        self, rgb: Tensor, levels: list[float], new_scene: Sequence[bool], run: list[int]
    ) -> tuple[Tensor, Tensor]:
        """The frames of ``run``, each averaged with the ones before it, and their noise maps."""
        assert self._average is not None
        frames, maps = [], []
        for k in run:  # in stream order: each frame's average starts from the one before it
            average, noise_map = self._average(rgb[k : k + 1], levels[k] / 255.0, new_scene[k])
            frames.append(average)
            maps.append(noise_map)
        if len(run) == 1:
            return frames[0].to(rgb.dtype), maps[0]
        return torch.cat(frames).to(rgb.dtype), torch.cat(maps)


def denoise_pass_for(
    denoiser: LoadedModel | DenoisePass | None,
    level: float | Literal["auto"],
    *,
    temporal: bool,
    flow: Literal["dis", "torch"],
    backend: Backend,
    compile: bool,
) -> DenoisePass:
    """One stream's pass at ``level`` (a sigma on 0..255, or auto): built for ``backend``'s device and
    precision, or, given a `DenoisePass` that several streams share, on its module (one copy of the
    weights on the device)."""
    if denoiser is None:
        raise ConfigError("--denoise needs a denoiser model; the plan loads one (vsr.pipeline.plan)")
    sigma = None if level == "auto" else float(level)
    if isinstance(denoiser, DenoisePass):
        return denoiser.for_stream(sigma, temporal=temporal)
    return DenoisePass(
        denoiser,
        device=backend.device,
        precision=backend.precision,
        sigma=sigma,
        compile=compile,
        temporal=temporal,
        flow=flow,
    )
