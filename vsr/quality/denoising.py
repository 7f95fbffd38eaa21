"""The standard colour-denoising test protocol (CBSD68, Kodak24) and `evaluate_denoising`.

1. Read the clean image as uint8 RGB (no crop).
2. Add white Gaussian noise of standard deviation sigma (on the 0..255 scale) to every channel
   of every pixel, in float64. The noisy image is neither clipped nor rounded to 8 bits: this is
   the AWGN protocol of the published tables (DnCNN, FFDNet: ``clean + sigma/255 * randn``).
   The noise of image number ``index`` (its position in the folder sorted by name) comes from
   ``numpy.random.default_rng((seed, index))``, seed 0 by default, so a folder always gets the
   same noise and no two images share it.
3. Denoise, telling the model sigma (the model takes sigma/255 for [0, 1] images); clip and round
   the result to uint8, as any saved result would be.
4. Score PSNR over all three RGB channels on 0..255 with no border cut (the CBSD68 convention),
   and SSIM (Wang et al.) as the mean of the three channels' SSIM.

The noisy-input baseline (``model="none"``) scores the noisy image itself, as the model sees it:
unclipped, its PSNR is 20 log10(255 / sigma) in expectation, 20.17 dB at sigma 25.
"""

from __future__ import annotations

import copy
import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from vsr.backends import resolve_device, resolve_precision
from vsr.errors import ConfigError, InputError, ModelError
from vsr.models import LoadedModel, load_model
from vsr.ops.tiling import pad_to_multiple
from vsr.quality.crops import crop_folder, write_comparison
from vsr.quality.evaluate import find_images
from vsr.quality.metrics import psnr, ssim
from vsr.quality.protocol import load_image, to_uint8
from vsr.quality.report import DenoiseReport, DenoiseResult

__all__ = ["NOISY_BASELINE", "REPORT_SIGMAS", "ModelDenoiser", "add_gaussian_noise", "evaluate_denoising"]

log = logging.getLogger(__name__)

NOISY_BASELINE = "none"  # no model: the noisy input scored as it is
REPORT_SIGMAS = (15, 25, 50)  # the noise levels the colour-denoising tables report
MAX_SIGMA = 255.0
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_SSIM_WINDOW = 11


def add_gaussian_noise(
    clean: NDArray[np.uint8], sigma: float, *, index: int, seed: int = 0
) -> NDArray[np.float64]:
    """``clean`` plus white Gaussian noise of std ``sigma`` (0..255 scale), float64, not clipped."""
    rng = np.random.default_rng((seed, index))
    return clean.astype(np.float64) + sigma * rng.standard_normal(clean.shape)


class ModelDenoiser:
    """Noisy float RGB on 0..255 (``H x W x 3``) and its sigma -> denoised uint8 RGB, any size.

    The image is padded to the model's size multiple (reflection) and the output cropped back.
    The module is called directly, not through a `Backend`: backends take one input, and a
    denoiser takes two (the image and its noise level).
    """

    def __init__(self, loaded: LoadedModel, *, device: str = "auto", precision: str = "fp32") -> None:
        d = loaded.descriptor
        if d.task != "denoise":
            raise ModelError(
                f"model {d.name} is a x{d.scale} super-resolution model, not a denoiser; "
                "evaluate it without --noise, or pass a denoiser checkpoint"
            )
        if d.in_channels != 3 or d.out_channels != 3:
            raise ModelError(
                f"model {d.name} maps {d.in_channels} to {d.out_channels} channels; evaluation needs an RGB model"
            )
        self.name = d.name
        self._multiple = d.size_multiple
        self._device = resolve_device(device)
        self.precision = resolve_precision(precision, self._device, d)
        self._dtype = _DTYPES[self.precision]
        # a private copy: the caller's module (the EMA weights during training) is never touched
        module = copy.deepcopy(loaded.module).eval().requires_grad_(False)
        self._module = module.to(device=self._device, dtype=self._dtype)

    def __call__(self, noisy: NDArray[np.floating], sigma: float) -> NDArray[np.uint8]:
        x = torch.from_numpy(np.ascontiguousarray(noisy, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0
        x, (h, w) = pad_to_multiple(x.to(self._device, self._dtype), self._multiple)
        level = torch.tensor([sigma / 255.0], device=self._device, dtype=self._dtype)
        with torch.inference_mode():
            y = self._module(x, level)[..., :h, :w]
        return to_uint8(y[0].permute(1, 2, 0).to("cpu", torch.float64).numpy() * 255.0)


def _check_sigma(sigma: float) -> None:
    if not 0.0 < sigma <= MAX_SIGMA:
        raise ConfigError(f"noise sigma must be in (0, {MAX_SIGMA:g}] on the 0..255 scale, got {sigma:g}")


def _denoiser(model: str, device: str, precision: str) -> tuple[ModelDenoiser | None, str]:
    if model == NOISY_BASELINE:
        return None, "none (noisy input)"
    denoiser = ModelDenoiser(load_model(model), device=device, precision=precision)
    # fp32 is the reference; any other precision is named so its numbers are not mistaken for fp32 ones.
    name = denoiser.name if denoiser.precision == "fp32" else f"{denoiser.name} ({denoiser.precision})"
    return denoiser, name


def _crop_names(images: list[Path], sigma: float) -> dict[Path, str]:
    shared = {s for s, n in Counter(p.stem for p in images).items() if n > 1}
    return {p: f"{p.name if p.stem in shared else p.stem}_sigma{sigma:g}.png" for p in images}


def evaluate_denoising(
    folder: str | os.PathLike[str],
    model: str = NOISY_BASELINE,
    *,
    sigma: float,
    seed: int = 0,
    device: str = "auto",
    precision: str = "fp32",
    crops: str | os.PathLike[str] | None = None,
) -> DenoiseReport:
    """Score a denoiser on every image of ``folder`` at noise level ``sigma`` (0..255 scale).

    ``model`` is a denoiser checkpoint, or ``"none"`` for the noisy input itself. With ``crops``,
    a noisy | denoised | clean PNG of each image's centre is written into that folder.
    """
    _check_sigma(sigma)
    images = find_images(folder)
    denoise, model_name = _denoiser(model, device, precision)
    crop_dir = crop_folder(crops)
    crop_names = _crop_names(images, sigma)
    rows = []
    for index, path in enumerate(images):
        clean = load_image(path)
        h, w = clean.shape[:2]
        if min(h, w) < _SSIM_WINDOW:
            raise InputError(
                f"image {path.name} is {w}x{h}, too small to score: SSIM needs {_SSIM_WINDOW} a side"
            )
        noisy = add_gaussian_noise(clean, sigma, index=index, seed=seed)
        result: NDArray[np.floating] = noisy if denoise is None else denoise(noisy, sigma)
        rows.append(
            DenoiseResult(
                name=path.name, width=w, height=h, psnr_rgb=psnr(result, clean), ssim_rgb=ssim(result, clean)
            )
        )
        log.debug("%s: PSNR %.2f dB", path.name, rows[-1].psnr_rgb)
        if crop_dir is not None:
            shown = to_uint8(noisy)
            write_comparison(crop_dir / crop_names[path], shown, to_uint8(result), clean)
    return DenoiseReport(folder=str(folder), model=model_name, sigma=sigma, seed=seed, rows=tuple(rows))
