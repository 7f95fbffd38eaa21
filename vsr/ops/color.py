"""YUV <-> RGB conversion as torch ops, on whatever device the planes are on.

The decoded planes are uploaded as they are (integers, chroma at its own resolution) and all the
arithmetic happens here, batched, on the model's device: no per-frame swscale RGB round trip on the
host. Conventions follow FFmpeg/ITU:

- limited range: Y in [16, 235] and C in [16, 240], scaled by 2**(bits-8);
- full range: Y in [0, 2**bits - 1], C centred on 2**(bits-1);
- 4:2:x chroma is sited "left" horizontally (co-sited with the even luma column: MPEG-2, H.264,
  HEVC and AV1 default) and centred vertically between the two luma rows it covers.

This module knows nothing about containers or pixel-format names: callers describe the samples
with `SampleFormat`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["MATRIX_COEFFICIENTS", "SampleFormat", "chroma_size", "planes_to_rgb", "rgb_to_planes"]

# (Kr, Kb) per matrix, keyed by FFmpeg's AVColorSpace numbers. BT.2020 constant luminance is not
# linear; it is converted as non-constant luminance (the difference is small and no encoder vsr
# writes produces it).
MATRIX_COEFFICIENTS: dict[int, tuple[float, float]] = {
    1: (0.2126, 0.0722),  # BT.709
    4: (0.30, 0.11),  # FCC
    5: (0.299, 0.114),  # BT.470BG (BT.601 625)
    6: (0.299, 0.114),  # SMPTE 170M (BT.601 525)
    7: (0.212, 0.087),  # SMPTE 240M
    9: (0.2627, 0.0593),  # BT.2020 non-constant luminance
    10: (0.2627, 0.0593),  # BT.2020 constant luminance (approximated, see above)
}
_RGB_MATRIX = 0
_YCGCO_MATRIX = 8

Family = Literal["yuv", "nv", "gray", "rgb", "bgr", "gbr"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SampleFormat:
    """How integer samples map to colour: layout, bit depth and the colour matrix and range."""

    family: Family
    bits: int  # significant bits of each sample
    chroma_w: int = 0  # horizontal chroma subsampling shift
    chroma_h: int = 0  # vertical chroma subsampling shift
    matrix: int = 1  # AVColorSpace number (resolved: never "unspecified")
    full_range: bool = False
    msb_aligned: bool = False  # p010-style: the significant bits sit in the top of 16

    @property
    def max_code(self) -> int:
        return (1 << self.bits) - 1

    @property
    def container_dtype(self) -> torch.dtype:
        return torch.uint8 if self.bits == 8 and not self.msb_aligned else torch.uint16


def _ranges(fmt: SampleFormat) -> tuple[float, float, float, float]:
    """(luma offset, luma span, chroma centre, chroma span) in sample codes."""
    if fmt.full_range:
        return 0.0, float(fmt.max_code), float(1 << (fmt.bits - 1)), float(fmt.max_code)
    s = float(1 << (fmt.bits - 8))
    return 16.0 * s, 219.0 * s, 128.0 * s, 224.0 * s


def _to_float(plane: torch.Tensor, fmt: SampleFormat, dtype: torch.dtype) -> torch.Tensor:
    x = plane.to(torch.int32) if plane.dtype == torch.uint16 else plane
    x = x.to(dtype)
    if fmt.msb_aligned:
        x = x / float(1 << (16 - fmt.bits))
    return x


def _upsample_chroma(c: torch.Tensor, height: int, width: int, fmt: SampleFormat) -> torch.Tensor:
    """Chroma planes (N, 2, h, w) to luma size, honouring the siting described above."""
    if fmt.chroma_w:
        nxt = torch.cat([c[..., 1:], c[..., -1:]], dim=-1)
        # even luma columns sit on a chroma sample; odd ones halfway to the next
        c = torch.stack([c, (c + nxt) * 0.5], dim=-1).flatten(-2)
    if fmt.chroma_h:
        prev = torch.cat([c[..., :1, :], c[..., :-1, :]], dim=-2)
        nxt = torch.cat([c[..., 1:, :], c[..., -1:, :]], dim=-2)
        # chroma row j sits between luma rows 2j and 2j+1: weights 3/4 and 1/4
        c = torch.stack([c * 0.75 + prev * 0.25, c * 0.75 + nxt * 0.25], dim=-2).flatten(-3, -2)
    return c[..., :height, :width]


def _downsample_chroma(c: torch.Tensor, fmt: SampleFormat) -> torch.Tensor:
    """Full-resolution chroma (N, 2, H, W) to the subsampled grid, the inverse siting of the above."""
    if fmt.chroma_h:
        if c.shape[-2] % 2:
            c = torch.cat([c, c[..., -1:, :]], dim=-2)
        c = (c[..., 0::2, :] + c[..., 1::2, :]) * 0.5
    if fmt.chroma_w:
        if c.shape[-1] % 2:
            c = torch.cat([c, c[..., -1:]], dim=-1)
        # [1, 2, 1] / 4 centred on each even column (left siting), edge replicated
        left = torch.cat([c[..., :1], c[..., 1:-1:2]], dim=-1)
        c = (left + 2.0 * c[..., 0::2] + c[..., 1::2]) * 0.25
    return c


def _ycbcr_to_rgb(y: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor, matrix: int) -> torch.Tensor:
    if matrix == _YCGCO_MATRIX:
        t = y - cb
        return torch.stack([t + cr, y + cb, t - cr], dim=1)
    kr, kb = MATRIX_COEFFICIENTS.get(matrix, MATRIX_COEFFICIENTS[1])
    kg = 1.0 - kr - kb
    r = y + (2.0 - 2.0 * kr) * cr
    b = y + (2.0 - 2.0 * kb) * cb
    g = (y - kr * r - kb * b) / kg
    return torch.stack([r, g, b], dim=1)


def _rgb_to_ycbcr(rgb: torch.Tensor, matrix: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    if matrix == _YCGCO_MATRIX:
        return 0.25 * r + 0.5 * g + 0.25 * b, -0.25 * r + 0.5 * g - 0.25 * b, 0.5 * (r - b)
    kr, kb = MATRIX_COEFFICIENTS.get(matrix, MATRIX_COEFFICIENTS[1])
    y = kr * r + (1.0 - kr - kb) * g + kb * b
    return y, (b - y) / (2.0 - 2.0 * kb), (r - y) / (2.0 - 2.0 * kr)


def planes_to_rgb(
    planes: tuple[torch.Tensor, ...], fmt: SampleFormat, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Batched integer planes -> RGB in [0, 1] (unclamped for out-of-gamut YUV), shape (N, 3, H, W).

    ``planes`` are batched like the frame's planes: (N, H, W) per planar plane, (N, h, w, 2) for an
    interleaved UV plane, (N, H, W, 3) for packed RGB/BGR.
    """
    if fmt.family in ("rgb", "bgr"):
        rgb = _to_float(planes[0], fmt, dtype).permute(0, 3, 1, 2) / fmt.max_code
        return rgb.flip(1) if fmt.family == "bgr" else rgb
    if fmt.family == "gbr" or (fmt.family == "yuv" and fmt.matrix == _RGB_MATRIX):
        g, b, r = (_to_float(p, fmt, dtype) for p in planes[:3])
        return torch.stack([r, g, b], dim=1) / fmt.max_code
    y = _to_float(planes[0], fmt, dtype)
    height, width = y.shape[-2:]
    y_off, y_span, c_mid, c_span = _ranges(fmt)
    y = (y - y_off) / y_span
    if fmt.family == "gray":
        return y.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    if fmt.family == "nv":
        chroma = _to_float(planes[1], fmt, dtype).permute(0, 3, 1, 2)
    else:
        chroma = torch.stack([_to_float(planes[1], fmt, dtype), _to_float(planes[2], fmt, dtype)], dim=1)
    chroma = _upsample_chroma((chroma - c_mid) / c_span, height, width, fmt)
    return _ycbcr_to_rgb(y, chroma[:, 0], chroma[:, 1], fmt.matrix)


def _quantize(x: torch.Tensor, fmt: SampleFormat) -> torch.Tensor:
    x = x.round().clamp_(0, fmt.max_code)
    if fmt.msb_aligned:
        x = x * float(1 << (16 - fmt.bits))
    if fmt.container_dtype == torch.uint8:
        return x.to(torch.uint8)
    return x.to(torch.int32).to(torch.uint16)


def rgb_to_planes(rgb: torch.Tensor, fmt: SampleFormat) -> tuple[torch.Tensor, ...]:
    """RGB (N, 3, H, W), nominally [0, 1], -> integer planes in the layout `planes_to_rgb` takes."""
    rgb = rgb.float() if rgb.dtype in (torch.float16, torch.bfloat16) else rgb
    if fmt.family in ("rgb", "bgr"):
        x = rgb.flip(1) if fmt.family == "bgr" else rgb
        return (_quantize(x.permute(0, 2, 3, 1) * fmt.max_code, fmt).contiguous(),)
    if fmt.family == "gbr" or (fmt.family == "yuv" and fmt.matrix == _RGB_MATRIX):
        x = rgb * fmt.max_code
        return tuple(_quantize(x[:, i], fmt) for i in (1, 2, 0))
    y, cb, cr = _rgb_to_ycbcr(rgb, fmt.matrix)
    y_off, y_span, c_mid, c_span = _ranges(fmt)
    y_plane = _quantize(y * y_span + y_off, fmt)
    if fmt.family == "gray":
        return (y_plane,)
    chroma = _downsample_chroma(torch.stack([cb, cr], dim=1), fmt) * c_span + c_mid
    if fmt.family == "nv":
        return y_plane, _quantize(chroma.permute(0, 2, 3, 1), fmt).contiguous()
    return y_plane, _quantize(chroma[:, 0], fmt), _quantize(chroma[:, 1], fmt)


def chroma_size(height: int, width: int, fmt: SampleFormat) -> tuple[int, int]:
    """Chroma plane size for a luma size (rounded up for odd sizes, as FFmpeg does)."""
    return -(-height >> fmt.chroma_h), -(-width >> fmt.chroma_w)
