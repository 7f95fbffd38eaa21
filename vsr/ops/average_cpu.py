"""`vsr.ops.temporal.average_step` for one float32 frame on the CPU, through OpenCV and numpy.

The step is a handful of warps and some twenty per-pixel operations on one-channel planes. As torch
ops each is a pass over memory with its own temporaries. Here the bilinear maps are made once for
the average and its variance, the source-inside mask comes from the same maps, the 5x5 window is
OpenCV's box filter, and the arithmetic runs in place: 1.17 against 1.73 ms a step at 384x288,
0.27 against 0.41 at 176x144, one core (`tools/bench_average_step.py`, docs/BENCHMARKS.md).

The result is the torch step's: the same taps (OpenCV's bilinear remap interpolates at 1/32 pixel,
so a warped value can differ by 1/64 pixel times the slope there), the same window with its edges
replicated, the same formulas (`tests/test_denoise_average.py` holds it to the float64 torch step).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch import Tensor

__all__ = ["average_step_cpu"]

# E|x| for x ~ N(0, v) is sqrt(v) * sqrt(2 / pi)
STD_TO_MEAN_ABS = math.sqrt(2.0 / math.pi)


def _maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``2 x H x W`` backward displacements -> remap's absolute source coordinates (x, y)."""
    _, height, width = flow.shape
    map_x = flow[0] + np.arange(width, dtype=np.float32)[None, :]
    map_y = flow[1] + np.arange(height, dtype=np.float32)[:, None]
    return map_x, map_y


def average_step_cpu(
    average: Tensor,
    variance: Tensor,
    current: Tensor,
    flow: Tensor,
    sigma: float,
    *,
    tolerance: float,
    min_variance: float,
) -> tuple[Tensor, Tensor]:
    """`vsr.ops.temporal.average_step` for ``1 x C x H x W`` float32 CPU tensors (see there)."""
    _, channels, height, width = average.shape
    if tuple(flow.shape) != (1, 2, height, width):
        raise ValueError(f"flow {tuple(flow.shape)} does not fit image {tuple(average.shape)}")
    map_x, map_y = _maps(flow[0].detach().float().contiguous().numpy())
    # 1 where the source lies inside the frame, 0 elsewhere
    inside = cv2.bitwise_and(cv2.inRange(map_x, 0.0, width - 1.0), cv2.inRange(map_y, 0.0, height - 1.0))
    inside = inside.astype(np.float32)
    inside *= 1.0 / 255.0
    source = average[0].detach().contiguous().numpy()
    frame = current[0].detach().contiguous().numpy()
    past_variance = variance[0, 0].detach().float().contiguous().numpy()

    # the average's planes and its variance as one 4-channel image: OpenCV's bilinear remap of
    # float32 is vectorised for interleaved channels, so four cost about what one plane does
    packed = cv2.merge([*source, past_variance])
    warped_all = cv2.split(
        cv2.remap(packed, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(
            height, width, channels + 1
        )
    )
    warped, past = warped_all[:channels], warped_all[channels]
    mismatch = np.zeros((height, width), dtype=np.float32)
    plane = np.empty((height, width), dtype=np.float32)
    for c in range(channels):
        np.clip(warped[c], 0.0, 1.0, out=warped[c])
        cv2.absdiff(warped[c], frame[c], dst=plane)
        mismatch += plane
    # the mean |difference| over the channels and a 5x5 window, edges replicated
    err = cv2.blur(mismatch, (5, 5), borderType=cv2.BORDER_REPLICATE)
    err *= 1.0 / channels

    np.maximum(past, min_variance, out=past)
    noise = sigma * sigma
    total = past + noise
    # the mismatch beyond what noise alone makes, in units of the tolerance, then the trust
    excess = cv2.sqrt(total)
    excess *= -STD_TO_MEAN_ABS
    excess += err
    np.maximum(excess, 0.0, out=excess)
    excess *= 1.0 / tolerance
    np.square(excess, out=excess)
    np.negative(excess, out=excess)
    trust = cv2.exp(excess, dst=excess)
    trust *= inside  # 0 or 1
    weight = trust
    weight *= noise
    weight /= total  # the warped average's share
    mixed = np.empty((channels, height, width), dtype=np.float32)
    for c in range(channels):
        np.subtract(warped[c], frame[c], out=plane)
        plane *= weight
        np.add(frame[c], plane, out=mixed[c])
    # weight^2 * v + (1 - weight)^2 * sigma^2
    new_variance = np.square(weight)
    new_variance *= past
    np.subtract(1.0, weight, out=plane)
    np.square(plane, out=plane)
    plane *= noise
    new_variance += plane
    return torch.from_numpy(mixed)[None], torch.from_numpy(new_variance)[None, None]
