"""Image quality metrics as the super-resolution literature computes them: PSNR and SSIM on Y.

Everything works in float64 numpy. The Y channel is MATLAB's ``rgb2ycbcr`` on a uint8 image, which
returns uint8, so Y is rounded to an integer: with the rounded Y this protocol reproduces the
published bicubic figures (Set5 x2 33.66 dB, x4 28.42 dB); an unrounded Y, as BasicSR computes it,
gives 33.68 dB on Set5 x2. SSIM is Wang et al. 2004 exactly as their ``ssim_index.m``: an 11x11
Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering, mean of the map.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

__all__ = ["psnr", "psnr_rgb", "psnr_y", "rgb_to_y", "shave", "ssim", "ssim_y"]

# BT.601 luma for R, G, B in [0, 1] onto the studio range 16..235, as MATLAB rgb2ycbcr.
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])
_Y_OFFSET = 16.0

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


def rgb_to_y(img: NDArray[np.uint8], *, rounded: bool = True) -> NDArray[np.float64]:
    """Y of BT.601 YCbCr (16..235) of a uint8 ``H x W x 3`` RGB image, as float64.

    ``rounded=True`` is MATLAB ``rgb2ycbcr`` on uint8 input (the result is uint8, rounded half away
    from zero), the convention of the published SR tables; ``rounded=False`` keeps the exact value,
    as BasicSR's ``calculate_psnr(..., test_y_channel=True)`` does.
    """
    if img.dtype != np.uint8:
        raise ValueError(f"rgb_to_y needs a uint8 image (its rounding is defined for uint8), got {img.dtype}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb_to_y needs an H x W x 3 RGB image, got shape {img.shape}")
    y = _Y_OFFSET + (img.astype(np.float64) / 255.0) @ _Y_WEIGHTS
    # Y is always positive, so floor(y + 0.5) is MATLAB's round-half-away-from-zero.
    return np.floor(y + 0.5) if rounded else y


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    if x.size == 0:
        raise ValueError("cannot compare empty images")
    return x, y


def psnr(a: ArrayLike, b: ArrayLike, *, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over all elements; ``inf`` for identical images."""
    x, y = _pair(a, b)
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def _gaussian_1d() -> NDArray[np.float64]:
    # The 2-D window of ssim_index.m is the normalised outer product of this normalised 1-D one,
    # so filtering rows then columns gives the same result with 2 x 11 instead of 121 taps.
    r = np.arange(_SSIM_WINDOW, dtype=np.float64) - (_SSIM_WINDOW - 1) / 2
    g = np.exp(-(r * r) / (2.0 * _SSIM_SIGMA**2))
    return g / g.sum()


def _filter_valid(x: NDArray[np.float64], g: NDArray[np.float64]) -> NDArray[np.float64]:
    rows = sliding_window_view(x, g.size, axis=0) @ g
    return sliding_window_view(rows, g.size, axis=1) @ g


def _ssim_2d(x: NDArray[np.float64], y: NDArray[np.float64], peak: float) -> float:
    if min(x.shape) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {_SSIM_WINDOW}x{_SSIM_WINDOW}, got {x.shape}")
    g = _gaussian_1d()
    c1 = (_SSIM_K1 * peak) ** 2
    c2 = (_SSIM_K2 * peak) ** 2
    mu_x = _filter_valid(x, g)
    mu_y = _filter_valid(y, g)
    var_x = _filter_valid(x * x, g) - mu_x * mu_x
    var_y = _filter_valid(y * y, g) - mu_y * mu_y
    cov = _filter_valid(x * y, g) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def ssim(a: ArrayLike, b: ArrayLike, *, peak: float = 255.0) -> float:
    """Structural similarity of two ``H x W`` images (or ``H x W x C``: the mean over channels)."""
    x, y = _pair(a, b)
    if x.ndim == 2:
        return _ssim_2d(x, y, peak)
    if x.ndim == 3:
        return float(np.mean([_ssim_2d(x[..., c], y[..., c], peak) for c in range(x.shape[2])]))
    raise ValueError(f"SSIM needs H x W or H x W x C images, got shape {x.shape}")


def shave(img: NDArray[np.generic], crop: int) -> NDArray[np.generic]:
    """``img`` without ``crop`` pixels on each side (the border an upscaler cannot know)."""
    if crop < 0:
        raise ValueError(f"crop must be >= 0, got {crop}")
    h, w = img.shape[0], img.shape[1]
    if 2 * crop >= min(h, w):
        raise ValueError(f"cannot crop {crop} pixels from each side of a {w}x{h} image")
    return img[crop : h - crop, crop : w - crop]


def psnr_y(sr: NDArray[np.uint8], hr: NDArray[np.uint8], *, crop: int) -> float:
    """PSNR of the rounded Y channel with ``crop`` (the scale, by convention) pixels shaved off."""
    return psnr(shave(rgb_to_y(sr), crop), shave(rgb_to_y(hr), crop))


def ssim_y(sr: NDArray[np.uint8], hr: NDArray[np.uint8], *, crop: int) -> float:
    """SSIM of the rounded Y channel with ``crop`` pixels shaved off each side."""
    return ssim(shave(rgb_to_y(sr), crop), shave(rgb_to_y(hr), crop))


def psnr_rgb(sr: NDArray[np.uint8], hr: NDArray[np.uint8], *, crop: int) -> float:
    """PSNR over the three RGB channels with ``crop`` pixels shaved off each side."""
    return psnr(shave(sr, crop), shave(hr, crop))
