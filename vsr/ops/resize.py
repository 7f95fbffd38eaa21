"""Separable image resize with MATLAB ``imresize`` semantics, as two small matrix products.

Each axis is resized by an interpolation matrix ``W`` (out x in), so ``out = Wy @ x @ Wx^T`` for
every channel. The matrices follow MATLAB's ``contributions()``: half-pixel-centre alignment
(``u = x/scale + 0.5*(1 - 1/scale)``), on downscale the kernel is stretched by ``1/scale``
(antialiasing, as MATLAB and Pillow do), each output row is normalised to sum 1, and taps outside
the image are mirrored (``symmetric``, MATLAB) or clamped (``replicate``). Building a dense matrix
costs O(in*out) memory per axis, which for video frames (a few thousand pixels a side) is small, and
it turns the resize into two GEMMs that run at full speed on any device and dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Literal, get_args

import torch
from torch import Tensor

__all__ = ["Border", "Kernel", "interpolation_matrix", "output_size", "resize"]

Kernel = Literal["bicubic", "lanczos", "bilinear", "box", "area"]
Border = Literal["symmetric", "replicate"]


def _cubic(x: Tensor) -> Tensor:
    # Keys' cubic convolution with a = -0.5, the kernel of MATLAB imresize and Pillow BICUBIC.
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = 1.5 * ax3 - 2.5 * ax2 + 1.0
    far = -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    return torch.where(ax <= 1.0, near, torch.where(ax <= 2.0, far, torch.zeros_like(x)))


def _lanczos3(x: Tensor) -> Tensor:
    # sinc(x) * sinc(x/3) on |x| < 3; torch.sinc is the normalised sinc and is 1 at 0.
    return torch.where(x.abs() < 3.0, torch.sinc(x) * torch.sinc(x / 3.0), torch.zeros_like(x))


def _triangle(x: Tensor) -> Tensor:
    return (1.0 - x.abs()).clamp(min=0.0)


def _box(x: Tensor) -> Tensor:
    # Half-open like MATLAB's box, so a tap exactly between two pixels goes to one of them only.
    return ((x >= -0.5) & (x < 0.5)).to(x.dtype)


# kernel -> (function, full width in input pixels at scale >= 1)
_KERNELS: dict[str, tuple[Callable[[Tensor], Tensor], float]] = {
    "bicubic": (_cubic, 4.0),
    "lanczos": (_lanczos3, 6.0),
    "bilinear": (_triangle, 2.0),
    "box": (_box, 1.0),
    "area": (_box, 1.0),
}


def output_size(in_size: int, scale: float) -> int:
    """Output length for a scale factor, rounded up as MATLAB does (``ceil(scale * in)``)."""
    return math.ceil(scale * in_size)


@lru_cache(maxsize=64)
def _matrix_f64(
    in_size: int, out_size: int, scale: float, kernel: str, antialias: bool, border: str
) -> Tensor:
    fn, width = _KERNELS[kernel]
    stretch = 1.0 / scale if (antialias and scale < 1.0) else 1.0
    width *= stretch
    # 1-based coordinates, as in MATLAB, so the formulas can be checked against imresize line by line.
    x = torch.arange(1, out_size + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    ind = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    # MATLAB evaluates scale*kernel(scale*d); the factor scale cancels in the normalisation below.
    weights = fn((u[:, None] - ind) / stretch)
    weights = weights / weights.sum(dim=1, keepdim=True)
    idx = ind.long() - 1
    if border == "symmetric":
        period = 2 * in_size
        idx = torch.remainder(idx, period)
        idx = torch.where(idx < in_size, idx, period - 1 - idx)
    else:
        idx = idx.clamp(0, in_size - 1)
    # Mirrored taps can land on the same input pixel: scatter_add sums them, as MATLAB does.
    return torch.zeros(out_size, in_size, dtype=torch.float64).scatter_add_(1, idx, weights)


@lru_cache(maxsize=128)
def _matrix_on(
    in_size: int,
    out_size: int,
    scale: float,
    kernel: str,
    antialias: bool,
    border: str,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor:
    # Computed in float64 on the CPU (exact enough for any target dtype), stored once per device/dtype.
    return _matrix_f64(in_size, out_size, scale, kernel, antialias, border).to(device=device, dtype=dtype)


def interpolation_matrix(
    in_size: int,
    out_size: int,
    *,
    scale: float | None = None,
    kernel: Kernel = "bicubic",
    antialias: bool = True,
    border: Border = "symmetric",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The ``out_size x in_size`` matrix that resizes one axis; rows sum to 1.

    ``scale`` defaults to ``out_size / in_size``; MATLAB uses the user's scale factor instead when
    one was given (``imresize(x, 0.3)``), which differs when ``in * scale`` is not an integer.
    """
    if kernel not in _KERNELS:
        raise ValueError(f"unknown resize kernel {kernel!r}; expected one of {', '.join(get_args(Kernel))}")
    if border not in get_args(Border):
        raise ValueError(f"unknown border mode {border!r}; expected one of {', '.join(get_args(Border))}")
    if in_size < 1 or out_size < 1:
        raise ValueError(f"resize sizes must be positive, got {in_size} -> {out_size}")
    s = float(scale) if scale is not None else out_size / in_size
    if s <= 0.0:
        raise ValueError(f"resize scale must be positive, got {s}")
    return _matrix_on(in_size, out_size, s, kernel, antialias, border, torch.device(device), dtype)


def resize(
    x: Tensor,
    size: tuple[int, int] | None = None,
    *,
    scale_factor: float | tuple[float, float] | None = None,
    kernel: Kernel = "bicubic",
    antialias: bool = True,
    border: Border = "symmetric",
) -> Tensor:
    """Resize a float ``N x C x H x W`` (or ``C x H x W``) tensor to ``size = (height, width)``.

    Give exactly one of ``size`` and ``scale_factor``. With ``scale_factor`` the output size is
    ``ceil(scale * input)`` and the kernel uses the factor itself, as MATLAB ``imresize(x, s)``.
    The result has the input's dtype and device; values are not clamped (cubic and Lanczos
    overshoot at edges, as they do in MATLAB).
    """
    if not x.is_floating_point():
        raise ValueError(f"resize needs a floating-point tensor, got {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"resize needs at least 2 dimensions (H, W), got shape {tuple(x.shape)}")
    if (size is None) == (scale_factor is None):
        raise ValueError("give exactly one of size and scale_factor")
    in_h, in_w = x.shape[-2], x.shape[-1]
    if scale_factor is not None:
        sy, sx = scale_factor if isinstance(scale_factor, tuple) else (scale_factor, scale_factor)
        out_h, out_w = output_size(in_h, sy), output_size(in_w, sx)
        scale_y: float | None = float(sy)
        scale_x: float | None = float(sx)
    else:
        assert size is not None
        out_h, out_w = size
        scale_y = scale_x = None

    def matrix(n_in: int, n_out: int, s: float | None) -> Tensor:
        return interpolation_matrix(
            n_in,
            n_out,
            scale=s,
            kernel=kernel,
            antialias=antialias,
            border=border,
            device=x.device,
            dtype=x.dtype,
        )

    wy = matrix(in_h, out_h, scale_y)
    wx = matrix(in_w, out_w, scale_x)
    # Same result either way up to rounding; resizing the axis that shrinks most first costs least.
    if out_h / in_h <= out_w / in_w:
        return torch.matmul(torch.matmul(wy, x), wx.T)
    return torch.matmul(wy, torch.matmul(x, wx.T))
