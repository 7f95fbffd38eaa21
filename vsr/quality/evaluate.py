"""`evaluate_folder`: score a model (or the bicubic baseline) on a folder of ground-truth images."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from vsr.backends import BackendOptions, create_backend, resolve_device, resolve_precision
from vsr.errors import ConfigError, InputError, ModelError
from vsr.models import LoadedModel, load_model
from vsr.models.descriptor import ModelDescriptor
from vsr.ops.tiling import pad_to_multiple
from vsr.quality.crops import crop_folder, write_comparison
from vsr.quality.metrics import shave
from vsr.quality.protocol import bicubic_upscale, degrade, load_image, modcrop, score, to_uint8
from vsr.quality.report import EvalReport, ImageResult, LrDegradation
from vsr.quality.sharpness import mean_gradient_magnitude

__all__ = [
    "BICUBIC",
    "IMAGE_SUFFIXES",
    "ModelUpscaler",
    "check_sr_model",
    "evaluate_folder",
    "find_images",
    "folder_pairs",
    "lr_input",
    "named_upscaler",
]

log = logging.getLogger(__name__)

BICUBIC = "bicubic"  # the protocol's own imresize upscale, not the float32 ClassicResize module
IMAGE_SUFFIXES = frozenset({".png", ".bmp", ".tif", ".tiff"})
_SSIM_WINDOW = 11

Upscaler = Callable[[NDArray[np.uint8]], NDArray[np.uint8]]


def check_sr_model(d: ModelDescriptor) -> None:
    """Refuse what the SR protocol cannot score: denoisers, non-RGB models, multi-frame models."""
    if d.task != "sr":
        raise ModelError(
            f"model {d.name} is a denoiser, not a super-resolution model; "
            "evaluate it with --noise SIGMA (e.g. --noise 25) on a folder of images"
        )
    if d.in_channels != 3 or d.out_channels != 3:
        raise ModelError(
            f"model {d.name} maps {d.in_channels} to {d.out_channels} channels; evaluation needs an RGB model"
        )
    if d.temporal_window != 1:
        raise ModelError(
            f"model {d.name} is a video model (window {d.temporal_window}); evaluate it on clips"
        )


class ModelUpscaler:
    """uint8 LR RGB -> uint8 SR RGB through a model on the torch backend.

    The LR is padded to the model's size multiple and the output cropped back, so any image size
    works; the output is rounded to uint8 like any saved result would be.
    """

    def __init__(self, loaded: LoadedModel, *, device: str = "auto", precision: str = "fp32") -> None:
        d = loaded.descriptor
        check_sr_model(d)
        self.scale = d.scale
        self._multiple = d.size_multiple
        self._device = resolve_device(device)
        self.precision = resolve_precision(precision, self._device, d)
        self._backend = create_backend(
            "torch", loaded, BackendOptions(device=self._device, precision=self.precision)
        )

    def __call__(self, lr: NDArray[np.uint8]) -> NDArray[np.uint8]:
        x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].to(torch.float32) / 255.0
        x, (h, w) = pad_to_multiple(x.to(self._device), self._multiple)
        y = self._backend.run(x)[..., : h * self.scale, : w * self.scale]
        return to_uint8(y[0].permute(1, 2, 0).to("cpu", torch.float64).numpy() * 255.0)


def find_images(folder: str | os.PathLike[str]) -> list[Path]:
    """The PNG, BMP and TIFF files directly in ``folder``, sorted by name."""
    root = Path(folder)
    if not root.exists():
        raise InputError(f"folder {root} does not exist; give a folder of ground-truth images")
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; give a folder of ground-truth images")
    images = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InputError(f"no PNG, BMP or TIFF images in {root}; give a folder of ground-truth images")
    return images


def named_upscaler(model: str, scale: int | None, device: str, precision: str) -> tuple[Upscaler, str, int]:
    """``model`` (bicubic, a built-in or a checkpoint) as an LR -> SR function; its report name; its scale."""
    if scale is not None and scale < 1:
        raise ConfigError(f"scale must be 1 or more, got {scale}")
    if model == BICUBIC:
        if scale is None:
            raise ConfigError("the bicubic baseline needs a scale; pass --scale (2, 3, 4, ...)")
        return partial(bicubic_upscale, scale=scale), BICUBIC, scale
    # load_model refuses a checkpoint whose own scale is not the one asked for.
    loaded = load_model(model, scale=scale)
    upscaler = ModelUpscaler(loaded, device=device, precision=precision)
    d = loaded.descriptor
    # fp32 is the reference; any other precision is named so its numbers are not mistaken for fp32 ones.
    name = d.name if upscaler.precision == "fp32" else f"{d.name} ({upscaler.precision})"
    return upscaler, name, d.scale


def _crop_names(images: list[Path], scale: int) -> dict[Path, str]:
    # File stems, unless two images share one (a.png, a.bmp): then the full name, so none overwrites another.
    shared = {s for s, n in Counter(p.stem for p in images).items() if n > 1}
    return {p: f"{p.name if p.stem in shared else p.stem}_x{scale}.png" for p in images}


def evaluate_folder(
    folder: str | os.PathLike[str],
    model: str = BICUBIC,
    *,
    scale: int | None = None,
    device: str = "auto",
    precision: str = "fp32",
    crops: str | os.PathLike[str] | None = None,
    degradation: LrDegradation = "bicubic",
    seed: int = 0,
) -> EvalReport:
    """Score ``model`` on every image of ``folder`` with the standard SR protocol (`vsr.quality.protocol`).

    ``model`` is ``"bicubic"`` (the protocol's baseline), another built-in name or a checkpoint;
    ``scale`` is required for built-ins and must match a checkpoint's own scale. Evaluation runs in
    fp32 unless ``precision`` says otherwise. With ``crops``, a bicubic | model | ground-truth PNG
    of each image's centre is written into that folder.

    ``degradation="realistic"`` makes each LR with the training's realistic chain instead
    (`vsr.train.realistic`: blur, resize, noise, JPEG, H.264), seeded by ``(seed, image index in
    name order)`` so every run scores the same inputs; the scoring is unchanged. The report also
    carries the set's gradient ratio (sharpness against the truths) and mean colour offset.
    """
    if degradation not in ("bicubic", "realistic"):
        raise ConfigError(f"unknown degradation {degradation!r}; use bicubic or realistic")
    images = find_images(folder)
    upscale, model_name, scale = named_upscaler(model, scale, device, precision)
    crop_dir = crop_folder(crops)
    crop_names = _crop_names(images, scale)

    rows = []
    totals = _SetTotals()
    for path, hr, lr in folder_pairs(Path(folder), scale, degradation=degradation, seed=seed):
        h, w = hr.shape[:2]
        sr = upscale(lr)
        totals.add(shave(sr, scale), shave(hr, scale))
        scores = score(sr, hr, scale=scale)
        rows.append(
            ImageResult(
                name=path.name,
                width=w,
                height=h,
                psnr_y=scores.psnr_y,
                ssim_y=scores.ssim_y,
                psnr_rgb=scores.psnr_rgb,
            )
        )
        log.debug("%s: PSNR-Y %.2f dB, SSIM-Y %.4f", path.name, scores.psnr_y, scores.ssim_y)
        if crop_dir is not None:
            bicubic = sr if model == BICUBIC else bicubic_upscale(lr, scale)
            write_comparison(crop_dir / crop_names[path], bicubic, sr, hr)
    return EvalReport(
        folder=str(folder),
        model=model_name,
        scale=scale,
        rows=tuple(rows),
        degradation=degradation,
        seed=seed if degradation == "realistic" else None,
        gradient_ratio=totals.gradient_ratio(),
        colour_offset=totals.colour_offset(),
    )


def lr_input(
    hr: NDArray[np.uint8],
    scale: int,
    *,
    degradation: LrDegradation = "bicubic",
    seed: int = 0,
    index: int = 0,
) -> NDArray[np.uint8]:
    """The LR input `evaluate_folder` scores for image ``index`` of a folder (in name order): the
    protocol's MATLAB bicubic, or the realistic chain seeded by ``(seed, index)``."""
    if degradation == "bicubic":
        return degrade(hr, scale)
    # imported here: the training package (and its PyAV encoder check) is not needed for bicubic
    from vsr.train.realistic import degrade_realistic

    return degrade_realistic(hr, scale, seed=(seed, index))


def folder_pairs(
    folder: Path, scale: int, *, degradation: LrDegradation = "bicubic", seed: int = 0
) -> Iterator[tuple[Path, NDArray[np.uint8], NDArray[np.uint8]]]:
    """``(path, ground truth, LR input)`` for each image of ``folder`` in name order, the truth
    cropped to a multiple of ``scale`` and the input made by `lr_input`; an `InputError` for an
    image too small to score (SSIM's window after the border is cut), before its input is made."""
    for index, path in enumerate(find_images(folder)):
        image = load_image(path)
        hr = modcrop(image, scale)
        h, w = hr.shape[:2]
        if min(h, w) < 2 * scale + _SSIM_WINDOW:
            needed = -(-(2 * scale + _SSIM_WINDOW) // scale) * scale  # cropped to a multiple of the scale
            raise InputError(
                f"image {path.name} is {image.shape[1]}x{image.shape[0]}, too small to score at x{scale}: "
                f"it needs {needed} pixels a side (SSIM's {_SSIM_WINDOW}-pixel window once a "
                f"{scale}-pixel border is cut from each edge)"
            )
        yield path, hr, lr_input(hr, scale, degradation=degradation, seed=seed, index=index)


class _SetTotals:
    """Running sums over a set, so no image is kept: |grad Y| of the outputs and of the truths
    (their ratio is `gradient_ratio`'s over the whole set), and the signed R, G, B differences."""

    def __init__(self) -> None:
        self._grad_out = self._grad_truth = 0.0
        self._rgb = np.zeros(3)
        self._pixels = 0

    def add(self, sr: NDArray[np.uint8], hr: NDArray[np.uint8]) -> None:
        # mean magnitudes over equal grids: weighting each by the grid's size sums the pixels
        grid = (sr.shape[0] - 1) * (sr.shape[1] - 1)
        self._grad_out += mean_gradient_magnitude(sr) * grid
        self._grad_truth += mean_gradient_magnitude(hr) * grid
        self._rgb += (sr.astype(np.float64) - hr.astype(np.float64)).reshape(-1, 3).sum(axis=0)
        self._pixels += sr.shape[0] * sr.shape[1]

    def gradient_ratio(self) -> float | None:
        """Mean gradient magnitude of the outputs over the truths' (None: flat truths)."""
        return self._grad_out / self._grad_truth if self._grad_truth > 0 else None

    def colour_offset(self) -> tuple[float, float, float]:
        """Mean signed R, G, B difference of the outputs from the truths (0..255 units): a colour
        shift shows as a channel far from 0 while the others are not."""
        r, g, b = (self._rgb / self._pixels).tolist()
        return (r, g, b)
