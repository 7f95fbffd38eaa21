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
The score of the clip is the mean over its frame pairs. `FlickerMeter` scores several restorations
of one clip at once (the configurations `vsr eval` compares), estimating each pair's flow once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from vsr.errors import InputError
from vsr.ops.flow import DisFlow
from vsr.ops.temporal import inside, warp

__all__ = ["OCCLUSION_LEVELS", "FlickerMeter", "FlickerScores", "PairErrors", "flicker", "warp_errors"]

OCCLUSION_LEVELS = 20.0  # mean |difference| over RGB (0..255) above which a GT pixel counts as occluded
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class FlickerScores:
    output: float  # mean warping error of the restored frames, 0..255
    ground_truth: float  # the ground truth's own, over the same pixels
    pairs: int  # consecutive frame pairs scored
    valid_fraction: float  # mean share of pixels that were not excluded as occluded

    @property
    def ratio(self) -> float:
        """Output over ground truth: 1 is as stable as the truth itself (inf when only the truth is still)."""
        if self.ground_truth > 0:
            return self.output / self.ground_truth
        return 1.0 if self.output == 0 else float("inf")


@dataclass(frozen=True)
class PairErrors:
    """One frame pair's per-pixel warping errors, ``H x W`` float32 on 0..255 (mean over RGB)."""

    outputs: tuple[NDArray[np.float32], ...]  # one map per restored stream
    ground_truth: NDArray[np.float32]
    valid: NDArray[np.bool_]  # the pixels the scores average over

    def means(self) -> tuple[list[float], float, float]:
        """(each output's mean error, the truth's, valid share) over the valid pixels."""
        count = int(self.valid.sum())
        if count == 0:
            return [0.0] * len(self.outputs), 0.0, 0.0
        outs = [float(m[self.valid].mean(dtype=np.float64)) for m in self.outputs]
        return outs, float(self.ground_truth[self.valid].mean(dtype=np.float64)), count / self.valid.size


def _tensor(img: NDArray[np.uint8]) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()


def _grey(img: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.clip(np.rint(img.astype(np.float64) @ _LUMA), 0, 255).astype(np.uint8)


def _error_map(flow: Tensor, previous: NDArray[np.uint8], current: NDArray[np.uint8]) -> Tensor:
    return (warp(_tensor(previous), flow) - _tensor(current)).abs().mean(dim=1, keepdim=True)


def _pair_errors(
    flow: NDArray[np.float32],
    outputs: Sequence[tuple[NDArray[np.uint8], NDArray[np.uint8]]],
    truth: tuple[NDArray[np.uint8], NDArray[np.uint8]],
) -> PairErrors:
    f = torch.from_numpy(flow).permute(2, 0, 1)[None].float()
    gt_err = _error_map(f, *truth)
    valid = (inside(f) > 0) & (gt_err <= OCCLUSION_LEVELS)
    maps = tuple(_error_map(f, *pair)[0, 0].numpy() for pair in outputs)
    return PairErrors(outputs=maps, ground_truth=gt_err[0, 0].numpy(), valid=valid[0, 0].numpy())


def warp_errors(
    flow: NDArray[np.float32],
    output: tuple[NDArray[np.uint8], NDArray[np.uint8]],
    truth: tuple[NDArray[np.uint8], NDArray[np.uint8]],
) -> tuple[float, float, float]:
    """(output error, ground-truth error, valid share) of one pair, each pair being (previous, current)."""
    outs, gt, valid = _pair_errors(flow, [output], truth).means()
    return outs[0], gt, valid


class FlickerMeter:
    """Flicker of ``streams`` restorations of one clip, fed frame by frame; the flow is shared.

    ``update(truth, outputs)`` takes the ground truth's next frame and each stream's output for it
    (uint8 ``H x W x 3`` RGB of the truth's size) and returns the pair's per-pixel errors, None for
    the first frame. Only the previous frame of each is held.
    """

    def __init__(self, streams: int = 1) -> None:
        if streams < 1:
            raise ValueError(f"a flicker meter needs at least one stream, got {streams}")
        self.streams = streams
        self._dis = DisFlow("medium")
        self._sums = np.zeros(streams + 2)  # each output's, the truth's, the valid share
        self.pairs = 0
        self._prev: tuple[tuple[NDArray[np.uint8], ...], NDArray[np.uint8], NDArray[np.uint8]] | None = None

    def update(self, truth: NDArray[np.uint8], outputs: Sequence[NDArray[np.uint8]]) -> PairErrors | None:
        if len(outputs) != self.streams:
            raise ValueError(f"expected {self.streams} outputs a frame, got {len(outputs)}")
        for out in outputs:
            if out.shape != truth.shape or out.ndim != 3 or out.shape[2] != 3:
                raise InputError(
                    f"flicker needs RGB frames of the ground truth's size, got {out.shape} and {truth.shape}"
                )
        grey = _grey(truth)
        errors = None
        if self._prev is not None:
            prev_outs, prev_truth, prev_grey = self._prev
            flow = self._dis(grey, prev_grey)
            pairs = [(p, o) for p, o in zip(prev_outs, outputs, strict=True)]
            errors = _pair_errors(flow, pairs, (prev_truth, truth))
            outs, gt, valid = errors.means()
            self._sums += [*outs, gt, valid]
            self.pairs += 1
        self._prev = (tuple(outputs), truth, grey)
        return errors

    def scores(self) -> list[FlickerScores]:
        """Each stream's scores, in the order of ``outputs``."""
        if self.pairs == 0:
            raise InputError("flicker needs at least two frames")
        means = self._sums / self.pairs
        truth, valid = float(means[-2]), float(means[-1])
        return [
            FlickerScores(output=float(m), ground_truth=truth, pairs=self.pairs, valid_fraction=valid)
            for m in means[:-2]
        ]


def flicker(outputs: Iterable[NDArray[np.uint8]], ground_truth: Iterable[NDArray[np.uint8]]) -> FlickerScores:
    """Score restored uint8 ``H x W x 3`` RGB frames against the ground truth's, frame for frame.

    Both are consumed in step, two frames of each held at a time, so a clip of any length fits.
    """
    meter = FlickerMeter(1)
    for out, gt in zip(outputs, ground_truth, strict=True):
        meter.update(gt, [out])
    return meter.scores()[0]
