"""Temporal ops on the model's device: backward warping (at the flow's size or larger), warp
confidence and the blend of temporal smoothing, and the motion-compensated average of the denoise
pre-pass (`average_step`).

A per-frame SR model invents texture independently in every frame, so static and smoothly moving
surfaces shimmer. The remedy used here is the classic recursive one (as in Lai et al., "Learning
Blind Video Temporal Consistency", ECCV 2018, without the network): warp the previous *output* onto
the current frame with motion measured on the low-resolution input, and blend it in where the warp
can be trusted. Trust comes from the low-resolution frames themselves: the previous LR frame is
warped with the same flow, and where it does not match the current LR frame (occlusions, flow
errors, new content entering the picture) the confidence falls to 0 and the current output is kept.

Flows are ``N x 2 x H x W`` tensors of backward displacements in pixels (see `vsr.ops.flow`):
channel 0 is dx, channel 1 is dy.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vsr.ops.average_cpu import STD_TO_MEAN_ABS, average_step_cpu

__all__ = [
    "average_step",
    "average_step_torch",
    "blend",
    "inside",
    "warp",
    "warp_confidence",
    "warp_upscaled",
]


@lru_cache(maxsize=8)
def _base_grid(height: int, width: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``1 x H x W x 2`` sampling grid of the identity warp, in grid_sample's normalised units."""
    # align_corners=False throughout, the pixel-centre convention of every resize in vsr: with it
    # a normalised coordinate names the same point of the picture at every resolution, which is
    # what lets a low-resolution flow drive a high-resolution warp (see warp_upscaled)
    ys = (torch.arange(height, device=device, dtype=dtype) * 2.0 + 1.0) / height - 1.0
    xs = (torch.arange(width, device=device, dtype=dtype) * 2.0 + 1.0) / width - 1.0
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)[None]


def _normalised(flow: Tensor) -> Tensor:
    """``N x 2 x H x W`` displacements in pixels -> the same in grid_sample's normalised units."""
    h, w = flow.shape[-2:]
    scale = torch.tensor([2.0 / w, 2.0 / h], device=flow.device, dtype=flow.dtype).view(1, 2, 1, 1)
    return flow * scale


def _sample(image: Tensor, displacement: Tensor, mode: str) -> Tensor:
    """grid_sample with ``displacement`` (``N x 2 x H x W``, normalised units) at ``image``'s size."""
    h, w = image.shape[-2:]
    grid = _base_grid(h, w, image.device, image.dtype) + displacement.to(image.dtype).permute(0, 2, 3, 1)
    if grid.shape[0] != image.shape[0]:
        grid = grid.expand(image.shape[0], -1, -1, -1)
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=False)


def warp(image: Tensor, flow: Tensor, *, mode: str = "bilinear") -> Tensor:
    """Backward warp: ``out[y, x] = image[y + dy, x + dx]`` with ``flow`` of ``image``'s size.

    Samples that fall outside the image take the nearest edge pixel; `inside` says which did, so a
    caller can give them no weight.
    """
    if flow.shape[-2:] != image.shape[-2:] or flow.shape[1] != 2:
        raise ValueError(f"flow {tuple(flow.shape)} does not fit image {tuple(image.shape)}")
    return _sample(image, _normalised(flow), mode)


def warp_upscaled(image: Tensor, flow: Tensor, *, mode: str = "bicubic") -> Tensor:
    """`warp` of a larger ``image`` (the restored frame) with a ``flow`` measured at lower resolution.

    The flow is resampled in normalised units, where a displacement means the same at both sizes,
    so no pixel-unit rescaling is needed. Bicubic by default: the previous output is warped again
    every frame, and bilinear's slight blur compounds through the recursion (measured: 0.5 dB lost
    on bigbuckbunny with bilinear, 0.05 dB with bicubic).
    """
    if flow.shape[1] != 2:
        raise ValueError(f"flow must be N x 2 x H x W, got {tuple(flow.shape)}")
    if image.device.type == "cpu" and image.dtype == torch.float32 and mode == "bicubic":
        return _remap(image, flow, "bicubic")
    return _grid_sample_upscaled(image, flow, mode)


def _grid_sample_upscaled(image: Tensor, flow: Tensor, mode: str) -> Tensor:
    """`warp_upscaled` through grid_sample: any device, dtype and mode."""
    displacement = _normalised(flow)
    if displacement.shape[-2:] != image.shape[-2:]:
        displacement = F.interpolate(
            displacement, size=image.shape[-2:], mode="bilinear", align_corners=False
        )
    return _sample(image, displacement, mode)


def _remap(image: Tensor, flow: Tensor, mode: str) -> Tensor:
    """`warp_upscaled`'s bicubic warp on the CPU through OpenCV's remap, 2.6x faster than
    grid_sample (768x576 RGB, one thread: 12.6 -> 6.9 ms, `tools/bench_temporal_step.py`); also
    bilinear (`average_step`'s warps at the flow's size: 3.5x faster, 0.6 against 2.0 ms for
    384x288 RGB), where clamping the coordinate, as grid_sample's border padding does, and
    replicating the edge pixels, as remap does, give the same taps.

    The same sampling: OpenCV's INTER_CUBIC is the Keys kernel with a = -0.75, as grid_sample's
    bicubic; the flow is resized with pixel centres aligned (INTER_LINEAR, as align_corners=False)
    and scaled to output pixels; each of the 4x4 taps past the edge takes the edge pixel, which is
    what grid_sample's bicubic does with padding_mode "border" (it clamps the taps, not the
    coordinate). remap interpolates at 1/32 pixel, so a value can be off by 1/64 pixel times the
    slope there: on vtest about 1e-6 on average.
    """
    import cv2  # the CPU path already uses OpenCV's DIS for the flow

    n, channels, height, width = image.shape
    # planes of a contiguous N x C x H x W are H x W images: remap each in place, no layout change
    out = torch.empty_like(image, memory_format=torch.contiguous_format)
    source = image.detach().contiguous()
    flows = flow.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    for k in range(n):
        f = flows[k if flows.shape[0] > 1 else 0]
        if f.shape[-2:] == (height, width):
            map_x, map_y = f[0].copy(), f[1].copy()
        else:
            map_x = cv2.resize(f[0], (width, height), interpolation=cv2.INTER_LINEAR)
            map_y = cv2.resize(f[1], (width, height), interpolation=cv2.INTER_LINEAR)
            map_x *= width / f.shape[-1]
            map_y *= height / f.shape[-2]
        map_x += xs
        map_y += ys
        # bicubic: the fixed-point form remap itself would make from float maps, made once for the
        # planes; bilinear remaps a plane faster from the float maps (0.15 against 0.28 ms at 384x288)
        maps = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2) if mode == "bicubic" else (map_x, map_y)
        for c in range(channels):
            cv2.remap(
                source[k, c].numpy(),
                *maps,
                cv2.INTER_CUBIC if mode == "bicubic" else cv2.INTER_LINEAR,
                dst=out[k, c].numpy(),
                borderMode=cv2.BORDER_REPLICATE,
            )
    return out


def inside(flow: Tensor) -> Tensor:
    """``N x 1 x H x W`` mask (float 0/1): where the warp's source pixel lies inside the image."""
    h, w = flow.shape[-2:]
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    x, y = flow[:, 0] + xs, flow[:, 1] + ys
    ok = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    return ok.unsqueeze(1).to(flow.dtype)


def warp_confidence(
    warped: Tensor, current: Tensor, valid: Tensor, *, tolerance: float, noise_floor: Tensor | float = 0.0
) -> Tensor:
    """``N x 1 x H x W`` trust in [0, 1] of a warped previous frame, from its mismatch with ``current``.

    The per-pixel error is the mean absolute difference over the channels, averaged over a 3x3
    neighbourhood so that one noisy pixel does not decide alone. Two noisy frames differ by about
    1.13 sigma on average even where the warp is perfect, so ``noise_floor`` (that amount, per
    image or one for all) is subtracted first; the rest maps to ``exp(-(err / tolerance)^2)``:
    1 for a perfect match, 0.37 at ``tolerance``, 0.02 at twice that. ``valid`` (from `inside`)
    zeroes the pixels whose source was outside the previous frame.
    """
    err = (warped - current).abs().mean(dim=1, keepdim=True)
    err = F.avg_pool2d(err, 3, stride=1, padding=1, count_include_pad=False)
    if isinstance(noise_floor, Tensor):
        noise_floor = noise_floor.to(err).reshape(-1, 1, 1, 1)
    err = (err - noise_floor).clamp_(min=0.0)
    return torch.exp(-((err / tolerance) ** 2)) * valid


def blend(current: Tensor, warped: Tensor, weight: Tensor) -> Tensor:
    """``current + weight * (warped - current)``; ``weight`` in [0, 1] broadcasts over channels.

    A channels_last ``current`` (a model's output on the CPU) is first made contiguous like the
    ``warped`` (contiguous from either warp): lerp over mixed layouts is slow on the CPU (the whole temporal step
    at 768x576 on vtest, one thread, idle machine: 15.96 -> 15.04 ms a frame with the copy, best of 6, `tools/bench_blend.py`).
    """
    if warped.is_contiguous() and not current.is_contiguous():
        current = current.contiguous()
    return torch.lerp(current, warped, weight.to(current.dtype))


def average_step(
    average: Tensor,
    variance: Tensor,
    current: Tensor,
    flow: Tensor,
    sigma: float,
    *,
    tolerance: float,
    min_variance: float,
) -> tuple[Tensor, Tensor]:
    """One step of a motion-compensated recursive average of noisy frames (a per-pixel Kalman filter).

    ``average`` (``1 x C x H x W``) is the running average up to the previous frame and ``variance``
    (``1 x 1 x H x W``) the variance of the noise left in it; ``current`` is the new frame, with
    noise of standard deviation ``sigma`` (all in [0, 1] units), and ``flow`` the backward flow
    from it to the previous frame. Both are warped onto the current frame (bilinear), and where the
    warp holds the current frame is mixed in with the weight that minimises the noise of the
    result, ``v / (v + sigma^2)`` for the warped average's variance ``v``: after n static frames
    the average is their mean, with ``sigma^2 / n`` of noise. ``min_variance`` floors the warped
    average's variance (``sigma^2 / n`` makes the result the mean of at most n + 1 frames), so
    that an error of the flow cannot stay in the picture for long.

    Trust is the match of the warped average with the current frame: the mean absolute difference
    over the channels and a 5x5 window (edges replicated), less what the two frames' noise alone would make
    (``sqrt(v + sigma^2) * sqrt(2 / pi)``); the excess maps to ``exp(-(excess / tolerance)^2)``,
    and a source outside the frame gets none. Where there is none the current frame is taken as it
    is, with variance ``sigma^2``. Returns the new average and its variance.

    One float32 frame on the CPU goes through `vsr.ops.average_cpu` (OpenCV and numpy, the same
    result); anything else through grid_sample and torch ops.
    """
    step = (
        average_step_cpu
        if _cpu_float32(average, variance, current, flow) and average.shape[0] == 1
        else average_step_torch
    )
    return step(average, variance, current, flow, sigma, tolerance=tolerance, min_variance=min_variance)


def average_step_torch(
    average: Tensor,
    variance: Tensor,
    current: Tensor,
    flow: Tensor,
    sigma: float,
    *,
    tolerance: float,
    min_variance: float,
) -> tuple[Tensor, Tensor]:
    """`average_step` as torch ops (grid_sample's warp, or OpenCV's remap for float32 on the CPU):
    any device, dtype and batch. `average_step` picks it or the CPU form."""
    warped = _warp_same_size(average, flow).clamp_(0.0, 1.0)
    warped_var = _warp_same_size(variance, flow).clamp_(min=min_variance)
    noise = sigma * sigma
    err = _box_mean((warped - current).abs_().mean(dim=1, keepdim=True), 5)
    # the mismatch beyond what noise alone makes, in units of the tolerance, then the trust
    excess = (warped_var + noise).sqrt_().mul_(-STD_TO_MEAN_ABS).add_(err).clamp_(min=0.0).div_(tolerance)
    trust = excess.square_().neg_().exp_().mul_(inside(flow))
    weight = trust.mul_(noise).div_(warped_var + noise)  # the warped average's share
    mixed = torch.lerp(current, warped, weight)
    # weight^2 * v + (1 - weight)^2 * sigma^2
    variance = warped_var.mul_(weight.square()).add_((1.0 - weight).square_().mul_(noise))
    return mixed, variance


def _cpu_float32(*tensors: Tensor) -> bool:
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def _warp_same_size(image: Tensor, flow: Tensor) -> Tensor:
    """`warp` (bilinear), through OpenCV's remap for float32 on the CPU."""
    if image.device.type == "cpu" and image.dtype == torch.float32:
        if flow.shape[-2:] != image.shape[-2:] or flow.shape[1] != 2:
            raise ValueError(f"flow {tuple(flow.shape)} does not fit image {tuple(image.shape)}")
        return _remap(image, flow, "bilinear")
    return warp(image, flow)


def _box_mean(image: Tensor, size: int) -> Tensor:
    """The mean over a ``size`` x ``size`` window of each pixel, edges replicated: sums of shifted
    slices, 20x faster on a CPU than avg_pool2d for a one-channel frame (0.06 against 1.2 ms at
    384x288)."""
    pad = size // 2
    h, w = image.shape[-2:]
    padded = F.pad(image, (pad, pad, pad, pad), mode="replicate")
    rows = padded[..., 0:w].clone()
    for i in range(1, size):
        rows.add_(padded[..., i : i + w])
    out = rows[..., 0:h, :].clone()
    for i in range(1, size):
        out.add_(rows[..., i : i + h, :])
    return out.div_(size * size)
