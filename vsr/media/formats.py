"""Pixel-format traits and "nearest supported format" choice.

The Source and the Sink both face the same question: a format X arrives (from a decoder, or from
the pipeline) and only a set S is acceptable (the pipeline's PIXEL_FORMATS, or what an encoder
takes). Both answer it here, with one ranking, so a 10-bit 4:2:2 input never silently becomes
8-bit 4:2:0 where a closer format exists.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import av

from vsr.media.frame import PIXEL_FORMATS

__all__ = ["FormatTraits", "format_traits", "loses_information", "nearest_format", "non_j_format"]


@dataclass(frozen=True, slots=True)
class FormatTraits:
    """What a pixel format keeps of a picture: colour model, precision, chroma resolution, alpha."""

    name: str
    model: str  # "yuv" (planar or semi-planar), "rgb" (packed or planar), "gray"
    bits: int  # significant bits of the colour components (p010le: 10, not 16)
    chroma_w: int  # horizontal chroma subsampling shift (0 for rgb/gray)
    chroma_h: int
    alpha: bool
    semiplanar: bool  # nv12/p010le style interleaved chroma


@cache
def format_traits(pix_fmt: str) -> FormatTraits:
    """Traits of any pixel format FFmpeg knows, read from its descriptor (not a hand-kept table)."""
    # A 4x4 picture is enough to read the chroma plane size off the descriptor.
    fmt = av.VideoFormat(pix_fmt, 4, 4)
    colour = [c for c in fmt.components if not c.is_alpha]
    alpha = any(c.is_alpha for c in fmt.components)
    bits = max(c.bits for c in colour)
    if fmt.is_rgb or fmt.has_palette:
        return FormatTraits(pix_fmt, "rgb", bits, 0, 0, alpha, False)
    if len(colour) == 1:
        return FormatTraits(pix_fmt, "gray", bits, 0, 0, alpha, False)
    # PyAV's is_chroma is only set for subsampled chroma, so the planes are told apart by order:
    # luma first, then the two chroma components (on one plane for nv12-style formats).
    chroma = colour[1:]
    shift_w = round(math.log2(4 / chroma[0].width))
    shift_h = round(math.log2(4 / chroma[0].height))
    chroma_planes = {c.plane for c in chroma}
    semiplanar = len(chroma_planes) == 1 and colour[0].plane not in chroma_planes  # not packed (yuyv)
    return FormatTraits(pix_fmt, "yuv", bits, shift_w, shift_h, alpha, semiplanar)


def non_j_format(pix_fmt: str) -> str:
    """``yuvj420p`` -> ``yuv420p``: the deprecated full-range formats say range in the format name;
    encoders and FFmpeg want the plain format plus a full-range tag."""
    return "yuv" + pix_fmt[4:] if pix_fmt.startswith("yuvj") else pix_fmt


def _distance(src: FormatTraits, dst: FormatTraits) -> tuple[int, ...]:
    # A change of colour model first (it needs a matrix the stream's tags may not describe, and
    # gray drops colour altogether), then losses (precision, chroma resolution), then waste.
    if src.model == dst.model:
        model_change = 0
    else:
        model_change = 2 if dst.model == "gray" else 1
    bits_loss = max(0, src.bits - dst.bits)
    chroma_loss = max(0, dst.chroma_w - src.chroma_w) + max(0, dst.chroma_h - src.chroma_h)
    bits_excess = max(0, dst.bits - src.bits)
    chroma_excess = max(0, src.chroma_w - dst.chroma_w) + max(0, src.chroma_h - dst.chroma_h)
    return (model_change, bits_loss, chroma_loss, bits_excess, chroma_excess, int(dst.semiplanar))


def loses_information(src: str, dst: str) -> bool:
    """Whether converting ``src`` to ``dst`` drops precision, chroma resolution or the colour model
    (nv12 -> yuv420p does not; yuv444p -> yuv420p does)."""
    return any(_distance(format_traits(src), format_traits(dst))[:3])


# Among equally good candidates, the pipeline's own order of preference (yuv before rgb, planar
# before packed) decides, so the choice never depends on how a set happened to iterate.
_PREFERENCE = {name: rank for rank, name in enumerate(PIXEL_FORMATS)}


def nearest_format(pix_fmt: str, candidates: Iterable[str]) -> str:
    """The candidate that loses least of ``pix_fmt`` (ties: the order of `PIXEL_FORMATS`).

    Full-range "yuvj" candidates are never chosen for a different source: range belongs in the
    colour tags, not in the format.
    """
    pool = sorted(c for c in set(candidates) if not c.startswith("yuvj") or c == pix_fmt)
    if not pool:
        raise ValueError("no candidate pixel formats")
    src = format_traits(pix_fmt)
    return min(
        pool, key=lambda c: (_distance(src, format_traits(c)), _PREFERENCE.get(c, len(_PREFERENCE)), c)
    )
