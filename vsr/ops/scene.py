"""How much a frame changed from another, on the model's device: scene cuts and still frames.

Both measures look at the low-resolution input only, batched, and cost a few pooling ops.

Scene cut (`frame_signature`, `is_cut`): two cheap measures, either of which declares a cut:

- the mean absolute difference of 32x32 thumbnails of the luma (what changed where), over
  ``CUT_THUMB_MAD``;
- the total-variation distance between the 32-bin luma histograms (what changed at all,
  whatever moved), over ``CUT_HISTOGRAM``.

Measured on the shared clips (frames made 192x144; luma on 0..255): between consecutive frames of
one shot the thumbnail difference reached 17.6 (foreman's fast pan; 3.4 on bigbuckbunny, 1.7 on
vtest) and the histogram distance 0.09; between frames of different clips it was at least 46 and
0.17. The thresholds sit between: 25.5 (0.1) and 0.2. A false cut only costs one frame without
temporal smoothing; a missed one is caught pixel by pixel by the warp confidence.

Still frame (`still_difference`): the largest difference of 2x2 block means over every block and
RGB channel. Block means halve the noise of a fixed camera while a change of a handful of pixels
still moves some block's mean by a quarter of the change; the maximum, not a mean or a PSNR, makes
one changed block enough to refuse reuse, however small the rest of the picture makes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "CUT_HISTOGRAM",
    "CUT_THUMB_MAD",
    "FrameSignature",
    "frame_signature",
    "is_cut",
    "luma",
    "still_difference",
]

CUT_THUMB_MAD = 0.1  # mean |difference| of 32x32 luma thumbnails, luma in [0, 1]
CUT_HISTOGRAM = 0.2  # total-variation distance of 32-bin luma histograms, in [0, 1]
_THUMB = (32, 32)
_BINS = 32
_STILL_BLOCK = 2


def luma(rgb: Tensor) -> Tensor:
    """``N x 3 x H x W`` RGB -> ``N x 1 x H x W`` BT.601 luma (full range, same units)."""
    w = torch.tensor([0.299, 0.587, 0.114], device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    return (rgb * w).sum(dim=1, keepdim=True)


@dataclass(frozen=True)
class FrameSignature:
    """What `is_cut` compares of one frame: a luma thumbnail and a normalised luma histogram."""

    thumb: Tensor  # 32 x 32
    histogram: Tensor  # 32 bins, sums to 1


def frame_signature(grey: Tensor) -> list[FrameSignature]:
    """One signature per frame of ``N x 1 x H x W`` luma in [0, 1]."""
    thumbs = F.adaptive_avg_pool2d(grey.float(), _THUMB)[:, 0]
    n = grey.shape[0]
    bins = (grey.float().flatten(1).clamp(0.0, 1.0) * _BINS).long().clamp_(max=_BINS - 1)
    counts = torch.zeros(n, _BINS, device=grey.device).scatter_add_(
        1, bins, torch.ones_like(bins, dtype=torch.float32)
    )
    hist = counts / counts.sum(dim=1, keepdim=True)
    return [FrameSignature(thumbs[k], hist[k]) for k in range(n)]


def is_cut(previous: FrameSignature, current: FrameSignature) -> bool:
    thumb_mad = float((current.thumb - previous.thumb).abs().mean())
    distance = 0.5 * float((current.histogram - previous.histogram).abs().sum())
    return thumb_mad > CUT_THUMB_MAD or distance > CUT_HISTOGRAM


def still_difference(a: Tensor, b: Tensor) -> Tensor:
    """Largest |difference| of 2x2 block means between ``N x C x H x W`` frames: ``N`` values."""
    if a.shape != b.shape:
        raise ValueError(f"frames differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    # ceil_mode: an odd last row or column is a block of its own, so no pixel goes unwatched
    diff = F.avg_pool2d((a - b).float(), _STILL_BLOCK, ceil_mode=True)
    return diff.abs().flatten(1).amax(dim=1)
