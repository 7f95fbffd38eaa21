"""Sharpness of restored images against their ground truths: the ratio of mean gradient magnitudes.

PSNR rewards the blurred average of the plausible answers, so it cannot tell a GAN's restored
texture from noise nor a PSNR model's blur from detail. ``gradient_ratio`` says which way an
output errs: about 1 when its edges are as strong as the ground truth's, below 1 when it is
blurred (bicubic and PSNR models), above 1 when it invents edges (over-sharpening, GAN artefacts).
It is measured on Y (unrounded BT.601), the channel the PSNR and SSIM of this package use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from vsr.quality.metrics import rgb_to_y, shave

__all__ = ["PHASE_BLOCK", "gradient_ratio", "mean_gradient_magnitude", "phase_pattern"]

PHASE_BLOCK = 32


def _gradient_sum(img: NDArray[np.uint8], crop: int) -> tuple[float, int]:
    y = shave(rgb_to_y(img, rounded=False), crop) if crop else rgb_to_y(img, rounded=False)
    # forward differences on the (H-1) x (W-1) grid where both exist
    dx = y[:-1, 1:] - y[:-1, :-1]
    dy = y[1:, :-1] - y[:-1, :-1]
    magnitude = np.sqrt(dx * dx + dy * dy)
    return math.fsum(magnitude.ravel()), magnitude.size


def mean_gradient_magnitude(img: NDArray[np.uint8], *, crop: int = 0) -> float:
    """Mean ``|grad Y|`` (Y in 16..235 units per pixel) of a uint8 ``H x W x 3`` RGB image."""
    total, count = _gradient_sum(img, crop)
    if count == 0:
        raise ValueError(f"an image of shape {img.shape} has no gradient to measure")
    return total / count


def gradient_ratio(
    sr: NDArray[np.uint8] | Sequence[NDArray[np.uint8]],
    hr: NDArray[np.uint8] | Sequence[NDArray[np.uint8]],
    *,
    crop: int = 0,
) -> float:
    """Mean gradient magnitude of the outputs over that of the ground truths (one image or a set).

    Over a set, the magnitudes of every pixel of every image are averaged before dividing, so
    each pixel counts once and a nearly flat ground truth cannot blow the ratio up. ``crop``
    pixels are shaved off each side first, as for PSNR.
    """
    outputs = [sr] if isinstance(sr, np.ndarray) else list(sr)
    truths = [hr] if isinstance(hr, np.ndarray) else list(hr)
    if len(outputs) != len(truths) or not outputs:
        raise ValueError(
            f"gradient_ratio needs as many outputs as ground truths, got {len(outputs)} and {len(truths)}"
        )
    out_total = truth_total = 0.0
    for a, b in zip(outputs, truths, strict=True):
        if a.shape != b.shape:
            raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
        out_total += _gradient_sum(a, crop)[0]
        truth_total += _gradient_sum(b, crop)[0]
    if truth_total == 0.0:
        raise ValueError("the ground truths are flat (no gradient); the ratio is undefined")
    return out_total / truth_total


def phase_pattern(
    sr: NDArray[np.uint8], hr: NDArray[np.uint8], scale: int, *, block: int = PHASE_BLOCK
) -> float:
    """How strongly ``sr`` carries a fixed pattern with the period ``scale`` (a checkerboard), in Y levels.

    A pixel-shuffle network computes each of the ``scale x scale`` positions of an output cell
    with its own channels; when those drift apart (GAN training can push them), the picture gets
    a grid with the scale's period, plainest on flat areas. In each ``block``-pixel block of the
    residual ``Y(sr) - Y(hr)``: the residual's mean at each sub-pixel phase (y mod scale,
    x mod scale), less the block's mean; the RMS of those over the phases; the mean over blocks.
    Image content leaves a floor (bicubic's kernel weighs the phases differently too), so compare
    models on the same inputs. ``block`` must be a multiple of ``scale``.
    """
    if scale < 1 or block % scale:
        raise ValueError(f"the block ({block}) must be a multiple of the scale ({scale})")
    if sr.shape != hr.shape:
        raise ValueError(f"output {sr.shape} and ground truth {hr.shape} differ in size")
    residual = rgb_to_y(sr, rounded=False) - rgb_to_y(hr, rounded=False)
    rows, cols = residual.shape[0] // block, residual.shape[1] // block
    if rows == 0 or cols == 0:
        raise ValueError(f"an image of shape {sr.shape} holds no {block}x{block} block")
    blocks = residual[: rows * block, : cols * block].reshape(rows, block, cols, block).transpose(0, 2, 1, 3)
    cells = block // scale
    phases = blocks.reshape(rows, cols, cells, scale, cells, scale).mean(axis=(2, 4))
    centred = phases - phases.mean(axis=(2, 3), keepdims=True)
    return float(np.sqrt((centred**2).mean(axis=(2, 3))).mean())
