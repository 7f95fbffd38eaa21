"""Padding to a model's size multiple, and seamless tiled inference.

A convolutional SR model's output pixel depends only on input pixels within its receptive radius.
``run_tiled`` therefore gives each tile ``overlap`` pixels of real neighbouring context, keeps only
the output of the tile's own pixels and stitches those: with ``overlap >= receptive radius`` the
result equals running the model on the whole image, up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

__all__ = ["pad_to_multiple", "run_tiled", "window_start"]


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad ``N x C x H x W`` at the bottom and right so H and W are multiples of ``multiple``.

    Returns the padded tensor and the original ``(H, W)``, to crop the output with. Reflection
    keeps edge statistics natural for the model; it needs the pad to be smaller than the image,
    so tiny images fall back to replicating the edge.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    h, w = x.shape[-2], x.shape[-1]
    pad_h = _round_up(h, multiple) - h
    pad_w = _round_up(w, multiple) - w
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (h, w)


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(start, stop) of each tile's own pixels and (start, stop) of the tile with its context.

    Every window has one length, ``tile + 2 * overlap`` (or the whole length, if shorter): at the
    image's edges it is moved inward, where it still holds the tile and at least ``overlap`` pixels
    of context or the edge itself. One window shape means one compiled build, one engine profile,
    and batches that stack."""
    window = min(tile + 2 * overlap, length)
    spans = []
    for start in range(0, length, tile):
        first = window_start(start, overlap, length, window)
        spans.append((start, min(start + tile, length), first, first + window))
    return spans


def window_start(start: int, overlap: int, length: int, window: int) -> int:
    """Where a ``window``-long window for the tile at ``start`` begins: ``overlap`` before it, moved
    inward at the image's edges so that it stays whole."""
    return min(max(start - overlap, 0), length - window)


def run_tiled(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    scale: int,
    tile: int,
    overlap: int,
    multiple: int = 1,
) -> Tensor:
    """Run ``fn`` (``N x C x H x W -> N x C' x sH x sW``) on ``x`` in tiles; return the stitched output.

    ``tile`` is the number of input pixels each tile owns per side, ``overlap`` the context added on
    each side; ``tile <= 0`` runs ``fn`` on the whole image. The image is padded once to
    ``multiple`` and tile size, overlap and offsets are rounded up to it, so every tile is a valid
    model input and sits on the same pixel grid as the whole image (models that pixel-unshuffle
    their input need that alignment to give identical results). The output is cropped to
    ``scale * (H, W)``.
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    if x.shape[-2] == 0 or x.shape[-1] == 0:
        raise ValueError(f"cannot tile an empty image of shape {tuple(x.shape)}")
    padded, (h, w) = pad_to_multiple(x, multiple)
    if tile <= 0:
        return fn(padded)[..., : h * scale, : w * scale]

    tile = _round_up(tile, multiple)
    overlap = _round_up(overlap, multiple)
    ph, pw = padded.shape[-2], padded.shape[-1]
    out: Tensor | None = None
    for y0, y1, cy0, cy1 in _spans(ph, tile, overlap):
        for x0, x1, cx0, cx1 in _spans(pw, tile, overlap):
            part = fn(padded[..., cy0:cy1, cx0:cx1])
            expected = ((cy1 - cy0) * scale, (cx1 - cx0) * scale)
            if tuple(part.shape[-2:]) != expected:
                raise ValueError(
                    f"tile function returned {tuple(part.shape)}, expected {expected} (scale {scale})"
                )
            if out is None:
                # Channels and dtype come from the model (autocast may change the dtype).
                out = part.new_empty((*part.shape[:-2], ph * scale, pw * scale))
            out[..., y0 * scale : y1 * scale, x0 * scale : x1 * scale] = part[
                ..., (y0 - cy0) * scale : (y1 - cy0) * scale, (x0 - cx0) * scale : (x1 - cx0) * scale
            ]
    assert out is not None  # the image is not empty, so at least one tile ran
    return out[..., : h * scale, : w * scale]
