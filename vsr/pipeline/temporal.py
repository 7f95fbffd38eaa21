"""Per-stream state of the Restore stage: scene cuts, still-frame reuse and temporal smoothing.

Each class here keeps what it needs of the previous frame (on the device where it is used) and is
fed the frames of each batch in order, so batching changes nothing: frame k of a batch is compared
with frame k-1, which may be the last frame of the previous batch. One instance per stream, owned
by the Restore thread; `reset()` forgets the past (a reconnect, a seek).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vsr.ops.flow import DisFlow, FlowPreset
from vsr.ops.noise import estimate_noise_sigma
from vsr.ops.scene import FrameSignature, frame_signature, is_cut, luma, still_difference
from vsr.ops.temporal import average_step, blend, inside, warp, warp_confidence, warp_upscaled
from vsr.ops.torch_flow import TorchFlow

__all__ = [
    "STILL_THRESHOLD",
    "CutDetector",
    "FlowMethod",
    "Motion",
    "MotionAverage",
    "StillFrames",
    "TemporalSmoother",
    "flow_for",
]

# "dis": OpenCV's DIS on the host (the frames' luma goes down as uint8); "torch": `TorchFlow` on the
# frames' own device. DIS is 2x faster on a CPU core (docs/BENCHMARKS.md), the torch one keeps a GPU
# run's frames on the GPU; "auto" picks by the device.
FlowMethod = Literal["auto", "dis", "torch"]


def flow_for(method: FlowMethod, device: torch.device) -> Literal["dis", "torch"]:
    if method == "auto":
        return "torch" if device.type == "cuda" else "dis"
    if method not in ("dis", "torch"):
        raise ValueError(f"unknown flow method {method!r}; expected auto, dis or torch")
    return method


# A frame is still when no 2x2 block mean of any RGB channel moved by more than 1.5 levels of 255
# from the frame whose output is reused: above the level or so of rounding that re-encoding a
# static picture leaves, far below a change anyone could see. Decoded duplicates differ by 0; one
# changed pixel shows as a quarter of its change, so a single pixel changed by more than 6 levels
# is enough to refuse. On vtest.avi 90 % of the 2x2 blocks of consecutive frames differ by at most
# 1 level, but only 14 % of 32-pixel tiles stay within 1.5 everywhere, and no whole frame does:
# a live camera's noise makes whole still frames rare, which is the side to err on.
STILL_THRESHOLD = 1.5 / 255

# Warp mismatch (mean |difference| over RGB, [0, 1] units, after the noise floor) at which the
# previous output keeps exp(-1) = 37 % of its blend weight; at twice it 2 %. On bigbuckbunny
# (bicubic x2, which does not flicker, so whatever blending costs shows) 6 levels lost 0.08 dB
# Y-PSNR and 4 levels 0.02 dB, for 21 % and 19 % less warping error; on vtest.avi with
# realesr-animevideov3 4 levels cut the warping error by 31 % at no PSNR cost (docs/BENCHMARKS.md).
WARP_TOLERANCE = 4.0 / 255
# E|a - b| for a, b with independent N(0, sigma^2) noise: sqrt(2) * sigma * sqrt(2 / pi)
_NOISE_TO_MISMATCH = 1.128


# ``Motion``'s downscale is skipped for frames whose short side would fall below this
_MIN_FLOW_SIDE = 32


def _grey_u8(grey: Tensor) -> np.ndarray:
    """``N x 1 x H x W`` float luma in [0, 1] on the device -> ``N x H x W`` uint8 on the host, for DIS."""
    return (grey * 255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)[:, 0].cpu().numpy()


class Motion:
    """Backward flow between consecutive frames with one of the two estimators.

    ``greys(rgb)`` makes what the estimator takes from a batch: uint8 luma on the host for DIS (one
    transfer for the batch), float luma where the frames are for the torch flow. Called with one
    frame's grey, the previous frame's, ``size`` and ``device``, it gives the ``1 x 2 x h x w``
    flow on ``device`` at ``size`` (h, w), the frames' own. With ``downscale`` the luma is first averaged over blocks of that
    many pixels a side (noise falls by the factor) and the flow measured there is resized back.
    """

    def __init__(
        self, method: Literal["dis", "torch"], preset: FlowPreset = "fine", *, downscale: int = 1
    ) -> None:
        if downscale < 1:
            raise ValueError(f"downscale must be at least 1, got {downscale}")
        self.downscale = downscale
        self._dis = DisFlow(preset) if method == "dis" else None
        self._torch_flow = TorchFlow() if method == "torch" else None

    def greys(self, rgb: Tensor) -> np.ndarray | Tensor:
        grey = luma(rgb.float())
        if self.downscale > 1 and min(grey.shape[-2:]) >= self.downscale * _MIN_FLOW_SIDE:
            grey = F.avg_pool2d(grey, self.downscale)
        return _grey_u8(grey) if self._dis is not None else grey

    def __call__(
        self,
        grey: np.ndarray | Tensor,
        previous: np.ndarray | Tensor,
        size: tuple[int, int],
        device: torch.device,
    ) -> Tensor:
        if self._dis is not None:
            assert isinstance(grey, np.ndarray) and isinstance(previous, np.ndarray)
            flow = torch.from_numpy(self._dis(grey, previous)).permute(2, 0, 1)[None].to(device)
        else:
            assert self._torch_flow is not None and isinstance(grey, Tensor) and isinstance(previous, Tensor)
            flow = self._torch_flow(grey[None], previous[None])
        if tuple(flow.shape[-2:]) == tuple(size):
            return flow
        h, w = flow.shape[-2:]
        gain = torch.tensor([size[1] / w, size[0] / h], device=flow.device, dtype=flow.dtype).view(1, 2, 1, 1)
        return F.interpolate(flow, size=size, mode="bilinear", align_corners=False) * gain


class CutDetector:
    """``update(rgb)`` -> one flag per frame: does a new scene start here (the first frame does)."""

    def __init__(self) -> None:
        self._previous: FrameSignature | None = None
        self.cuts = 0  # cuts seen after the first frame

    def reset(self) -> None:
        self._previous = None

    def update(self, rgb: Tensor) -> list[bool]:
        flags = []
        for signature in frame_signature(luma(rgb)):
            cut = self._previous is None or is_cut(self._previous, signature)
            self.cuts += cut and self._previous is not None
            flags.append(cut)
            self._previous = signature
        return flags


class StillFrames:
    """``update(rgb)`` -> one flag per frame: may it reuse the output of the last frame that ran?

    Each frame is compared with the *reference*, the last frame the model ran on, not with its
    predecessor: a slow drift of small steps adds up and ends the reuse, instead of freezing the
    picture at its first state.
    """

    def __init__(self, threshold: float = STILL_THRESHOLD) -> None:
        self.threshold = threshold
        self._reference: Tensor | None = None
        self.reused = 0
        self.seen = 0

    def reset(self) -> None:
        self._reference = None

    def update(self, rgb: Tensor) -> list[bool]:
        flags = []
        for k in range(rgb.shape[0]):
            frame = rgb[k : k + 1]
            change = None if self._reference is None else float(still_difference(frame, self._reference)[0])
            still = change is not None and change <= self.threshold
            if not still:
                self._reference = frame.clone()
            self.reused += still
            self.seen += 1
            flags.append(still)
        return flags


class TemporalSmoother:
    """Blends each restored frame with the previous output warped onto it, where the warp holds.

    ``__call__(lr, restored, new_scene)``: ``lr`` is the model's input (``N x 3 x h x w``, after
    any denoising), ``restored`` its output at the output size, ``new_scene`` one flag per frame;
    the frames must follow each other in the stream. The first frame of a scene is returned as it
    is, exactly, and nothing of the scene before it is kept.
    """

    clamp_warped = True  # the warped previous output to [0, 1]; a subclass smoothing signed values clears it

    def __init__(
        self,
        strength: float,
        *,
        flow: Literal["dis", "torch"] = "dis",
        preset: FlowPreset = "fine",
        tolerance: float = WARP_TOLERANCE,
    ):
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"temporal strength must be in [0, 1], got {strength}")
        self.strength = strength
        self.tolerance = tolerance
        self.flow_method = flow
        self._motion = Motion(flow, preset)
        self.reset()

    def reset(self) -> None:
        self._lr: Tensor | None = None
        self._grey: np.ndarray | Tensor | None = None
        self._out: Tensor | None = None
        self._noise_floor = 0.0

    def __call__(self, lr: Tensor, restored: Tensor, new_scene: Sequence[bool]) -> Tensor:
        greys = self._motion.greys(lr)
        out = []
        for k in range(lr.shape[0]):
            cur_lr, cur = lr[k : k + 1].float(), restored[k : k + 1]
            if new_scene[k] or self._out is None:
                result = cur
                # noise makes even a perfect warp mismatch; measured once a scene, like the denoiser's sigma
                self._noise_floor = _NOISE_TO_MISMATCH * float(estimate_noise_sigma(cur_lr)[0])
            else:
                result = self._smooth(cur_lr, greys[k], cur)
            self._lr, self._grey, self._out = cur_lr, greys[k], result
            out.append(result)
        return out[0] if len(out) == 1 else torch.cat(out)

    def _smooth(self, cur_lr: Tensor, grey: np.ndarray | Tensor, cur: Tensor) -> Tensor:
        assert self._lr is not None and self._grey is not None and self._out is not None
        flow = self._motion(grey, self._grey, tuple(cur_lr.shape[-2:]), cur_lr.device)
        confidence = warp_confidence(
            warp(self._lr, flow),
            cur_lr,
            inside(flow),
            tolerance=self.tolerance,
            noise_floor=self._noise_floor,
        )
        warped = warp_upscaled(self._out, flow)
        if self.clamp_warped:  # bicubic overshoots at edges; clamped so that the recursion cannot carry it on
            warped.clamp_(0.0, 1.0)
        weight = F.interpolate(confidence, size=cur.shape[-2:], mode="bilinear", align_corners=False)
        return blend(cur, warped, weight.mul_(self.strength))


# The denoise pre-pass's motion-compensated average (`MotionAverage`). A warp whose mismatch with
# the current frame exceeds what noise explains by this much (mean |difference| over RGB and a 5x5
# window, [0, 1] units) keeps exp(-1) = 37 % of its trust. x2, sigma 15 + H.264 300k, Y-PSNR gain
# over no pre-pass (vtest compact-x2 / gan-x2, foreman compact-x2 / gan-x2;
# tools/sweep_denoise_average.py, docs/BENCHMARKS.md): 4 levels +1.34 / +0.68, +1.21 / +1.17;
# 6 levels +1.37 / +0.74, +1.09 / +1.22; 8 levels +1.38 / +0.77, +0.93 / +1.20. Past 4 the PSNR
# model loses on foreman's handheld motion (the blur of trusting poor warps), so 4, as the
# temporal smoother's.
AVERAGE_TOLERANCE = 4.0 / 255
# The past is worth at most this many frames (with the current one, the noise variance left is at
# least sigma^2 / 9): 4 moved the gains by -0.07 to +0.04 dB, 16 by -0.01 to +0.02, and a short
# memory bounds how long a flow error can linger.
AVERAGE_FRAMES = 8
# The flow is measured on the luma averaged over 2x2 blocks: a quarter of DIS's time (3 against
# 9.5 ms at 384x288, one core), which keeps the pre-pass within a fifth of the Restore stage; at
# tolerance 4 it changed the gains above by -0.07 to +0.03 dB.
AVERAGE_FLOW_DOWNSCALE = 2
# and with DIS's "fine-lite" settings (`vsr.ops.flow`): "fine" without the variational refinement,
# which took half the flow's time and moved the gains by at most 0.02 dB
AVERAGE_FLOW_PRESET: FlowPreset = "fine-lite"


class MotionAverage:
    """The denoise pre-pass's temporal half: each noisy frame averaged with the frames before it,
    motion-compensated, where the motion holds (`vsr.ops.temporal.average_step`).

    ``__call__(frame, sigma, new_scene)``: ``frame`` is ``1 x 3 x h x w`` RGB in [0, 1] and
    ``sigma`` its noise level ([0, 1] units); returns the average and the per-pixel standard
    deviation of the noise left in it (``1 x 1 x h x w``), which a noise-level-conditioned
    denoiser takes as its noise map. The first frame of a scene comes back as it is, with sigma
    everywhere. Frames must follow each other in the stream.
    """

    def __init__(
        self,
        flow: Literal["dis", "torch"] = "dis",
        *,
        tolerance: float = AVERAGE_TOLERANCE,
        frames: int = AVERAGE_FRAMES,
        downscale: int = AVERAGE_FLOW_DOWNSCALE,
        preset: FlowPreset = AVERAGE_FLOW_PRESET,
    ) -> None:
        if frames < 1:
            raise ValueError(f"the average needs at least one frame, got {frames}")
        self.flow_method = flow
        self.tolerance = tolerance
        self.frames = frames
        self._motion = Motion(flow, preset, downscale=downscale)
        self.reset()

    def reset(self) -> None:
        self._average: Tensor | None = None
        self._variance: Tensor | None = None
        self._grey: np.ndarray | Tensor | None = None

    def __call__(self, frame: Tensor, sigma: float, new_scene: bool) -> tuple[Tensor, Tensor]:
        frame = frame.float()
        grey = self._motion.greys(frame)[0]
        noise = sigma * sigma
        if new_scene or self._average is None or self._variance is None or self._grey is None:
            average, variance = frame, torch.full_like(frame[:, :1], noise)
        else:
            flow = self._motion(grey, self._grey, tuple(frame.shape[-2:]), frame.device)
            average, variance = average_step(
                self._average,
                self._variance,
                frame,
                flow,
                sigma,
                tolerance=self.tolerance,
                min_variance=noise / self.frames,
            )
        self._average, self._variance, self._grey = average, variance, grey
        return average, variance.sqrt()
