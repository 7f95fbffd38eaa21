"""The standard single-image super-resolution test protocol, step by step.

1. Read the ground truth as uint8 RGB and crop it to a multiple of the scale (``modcrop``).
2. Make the low-resolution input with MATLAB ``imresize(HR, 1/scale, 'bicubic')``: antialiased,
   computed in double and rounded to uint8, as MATLAB does for a uint8 image.
3. Upscale (the bicubic baseline is ``imresize(LR, scale, 'bicubic')`` the same way) and round to uint8.
4. Score on the rounded Y channel with ``scale`` pixels shaved from every border, and on RGB.

The published tables (SRCNN's MATLAB code) instead downscale the Y channel alone in floating point
and never round the LR image; that gives Set5 bicubic 33.66 dB / 0.9299 (x2) exactly, this protocol
33.65 dB / 0.9295. Rounding the LR to uint8 RGB is what a network is actually fed, so it is kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from vsr.errors import InputError
from vsr.media.images import pillow_rawmode
from vsr.ops.resize import resize
from vsr.quality.metrics import psnr_rgb, psnr_y, ssim_y

__all__ = [
    "ImageScores",
    "bicubic_upscale",
    "degrade",
    "imresize",
    "load_image",
    "modcrop",
    "score",
    "to_uint8",
]

# 8-bit modes Pillow converts to RGB without loss of meaning; 16-bit and float modes would be
# clipped silently, so they are refused instead.
_EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})


def load_image(path: str | os.PathLike[str]) -> NDArray[np.uint8]:
    """An image file as uint8 ``H x W x 3`` RGB; grey images are replicated, alpha is dropped.

    Grey replicated to RGB has Y = 16 + 219/255 * grey, not the grey value itself: on Set14, whose
    ``bridge`` is grey, that is why this (and BasicSR) reports about 0.09 dB more than the MATLAB
    tables, which score a grey image on its own values.
    """
    p = Path(path)
    try:
        with Image.open(p) as im:
            # Pillow shows a 48-bit PNG as "RGB" and drops its low bytes; its tile says what it holds
            deep = ";16" in pillow_rawmode(im)
            mode = f"{im.mode} with 16 bits a channel" if deep else im.mode
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8).copy() if mode in _EIGHT_BIT_MODES else None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read image {p} ({reason}); is it a PNG, BMP or TIFF?") from exc
    if rgb is None:
        raise InputError(f"image {p} is {mode}, not 8 bits per channel; convert it to 8-bit RGB")
    return rgb


def modcrop(img: NDArray[np.generic], scale: int) -> NDArray[np.generic]:
    """``img`` cropped at the bottom and right to a multiple of ``scale`` in both dimensions."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    h, w = img.shape[0], img.shape[1]
    return img[: h - h % scale, : w - w % scale]


def imresize(img: NDArray[np.generic], size: tuple[int, int]) -> NDArray[np.float64]:
    """MATLAB ``imresize(img, [h w], 'bicubic')`` in float64, not rounded; ``H x W`` or ``H x W x C``."""
    x = torch.from_numpy(np.asarray(img, dtype=np.float64))
    planar = x.permute(2, 0, 1) if x.ndim == 3 else x[None]
    # With an explicit size the kernel scale is out/in, which equals 1/scale or scale exactly here.
    out = resize(planar[None], size, kernel="bicubic", antialias=True, border="symmetric")[0]
    return (out.permute(1, 2, 0) if x.ndim == 3 else out[0]).numpy()


def to_uint8(x: NDArray[np.floating]) -> NDArray[np.uint8]:
    """Values on 0..255 to uint8 as MATLAB converts doubles: clip, then round half away from zero."""
    return np.floor(np.clip(x, 0.0, 255.0) + 0.5).astype(np.uint8)


def degrade(hr: NDArray[np.uint8], scale: int) -> NDArray[np.uint8]:
    """The low-resolution input: ``imresize(HR, 1/scale, 'bicubic')`` of a modcropped HR, as uint8."""
    h, w = hr.shape[0], hr.shape[1]
    if h % scale or w % scale:
        raise ValueError(f"a {w}x{h} image is not a multiple of scale {scale}; modcrop it first")
    return to_uint8(imresize(hr, (h // scale, w // scale)))


def bicubic_upscale(lr: NDArray[np.uint8], scale: int) -> NDArray[np.uint8]:
    """The bicubic baseline: ``imresize(LR, scale, 'bicubic')`` as uint8."""
    return to_uint8(imresize(lr, (lr.shape[0] * scale, lr.shape[1] * scale)))


@dataclass(frozen=True, kw_only=True)
class ImageScores:
    psnr_y: float
    ssim_y: float
    psnr_rgb: float


def score(sr: NDArray[np.uint8], hr: NDArray[np.uint8], *, scale: int) -> ImageScores:
    """The protocol's three numbers for one image, with ``scale`` pixels shaved from each border."""
    if sr.shape != hr.shape:
        raise ValueError(f"upscaled image is {sr.shape}, ground truth {hr.shape}")
    return ImageScores(
        psnr_y=psnr_y(sr, hr, crop=scale),
        ssim_y=ssim_y(sr, hr, crop=scale),
        psnr_rgb=psnr_rgb(sr, hr, crop=scale),
    )
