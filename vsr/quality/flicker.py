"""Flicker: the temporal warping error of a restored clip, with motion taken from the ground truth.

For each pair of consecutive frames, the backward flow from frame t to t-1 is estimated on the
*ground truth* (OpenCV DIS, `vsr.ops.flow`, ``medium`` preset), the previous output is warped onto
the current one with it (`vsr.ops.temporal.warp`, bilinear), and the error is the mean absolute
difference between output t and the warped output t-1 over the pixels where that warp is valid,
on the 0..255 scale, averaged over the RGB channels (Lai et al., ECCV 2018, use the squared
difference; the absolute one reads directly in levels: a frame-to-frame brightness flicker of
+d / -d scores 2d). A pixel is valid when its source lies inside the previous frame and the
ground truth itself survives the warp (its own warped mismatch is at most ``OCCLUSION_LEVELS``):
that excludes occlusions, content entering the picture and the places where the flow failed.

The ground truth's own error over the same pixels is reported beside it: it is what real
motion, flow error and interpolation leave, the floor a perfectly stable restoration would reach.
The score of the clip is the mean over its frame pairs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from vsr.errors import InputError
from vsr.ops.flow import DisFlow
from vsr.ops.temporal import inside, warp

__all__ = ["OCCLUSION_LEVELS", "FlickerScores", "flicker", "warp_errors"]

OCCLUSION_LEVELS = 20.0  # mean |difference| over RGB (0..255) above which a GT pixel counts as occluded
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class FlickerScores:
    output: float  # mean warping error of the restored frames, 0..255
    ground_truth: float  # the ground truth's own, over the same pixels
    pairs: int  # consecutive frame pairs scored
    valid_fraction: float  # mean share of pixels that were not excluded as occluded


def _tensor(img: NDArray[np.uint8]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()


def _grey(img: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.clip(np.rint(img.astype(np.float64) @ _LUMA), 0, 255).astype(np.uint8)


def warp_errors(
    flow: NDArray[np.float32],
    output: tuple[NDArray[np.uint8], NDArray[np.uint8]],
    truth: tuple[NDArray[np.uint8], NDArray[np.uint8]],
) -> tuple[float, float, float]:
    """(output error, ground-truth error, valid share) of one pair, each pair being (previous, current)."""
    f = torch.from_numpy(flow).permute(2, 0, 1)[None].float()
    gt_prev, gt_cur = _tensor(truth[0]), _tensor(truth[1])
    gt_err = (warp(gt_prev, f) - gt_cur).abs().mean(dim=1, keepdim=True)
    valid = (inside(f) > 0) & (gt_err <= OCCLUSION_LEVELS)
    count = int(valid.sum())
    if count == 0:
        return 0.0, 0.0, 0.0
    out_err = (warp(_tensor(output[0]), f) - _tensor(output[1])).abs().mean(dim=1, keepdim=True)
    return float(out_err[valid].mean()), float(gt_err[valid].mean()), count / valid.numel()


def flicker(outputs: Iterable[NDArray[np.uint8]], ground_truth: Iterable[NDArray[np.uint8]]) -> FlickerScores:
    """Score restored uint8 ``H x W x 3`` RGB frames against the ground truth's, frame for frame.

    Both are consumed in step, two frames of each held at a time, so a clip of any length fits.
    """
    dis = DisFlow("medium")
    sums = np.zeros(3)
    pairs = 0
    prev: tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8]] | None = None
    for out, gt in zip(outputs, ground_truth, strict=True):
        if out.shape != gt.shape or out.ndim != 3 or out.shape[2] != 3:
            raise InputError(
                f"flicker needs RGB frames of the ground truth's size, got {out.shape} and {gt.shape}"
            )
        grey = _grey(gt)
        if prev is not None:
            flow = dis(grey, prev[2])
            sums += warp_errors(flow, (prev[0], out), (prev[1], gt))
            pairs += 1
        prev = (out, gt, grey)
    if pairs == 0:
        raise InputError("flicker needs at least two frames")
    output, truth, valid = sums / pairs
    return FlickerScores(
        output=float(output), ground_truth=float(truth), pairs=pairs, valid_fraction=float(valid)
    )
