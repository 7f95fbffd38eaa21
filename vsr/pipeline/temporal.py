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
from vsr.ops.temporal import blend, inside, warp, warp_confidence, warp_upscaled
from vsr.ops.torch_flow import TorchFlow

__all__ = ["STILL_THRESHOLD", "CutDetector", "FlowMethod", "StillFrames", "TemporalSmoother", "flow_for"]

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


def _grey_u8(rgb: Tensor) -> np.ndarray:
    """``N x 3 x H x W`` RGB on the device -> ``N x H x W`` uint8 luma on the host, for DIS."""
    grey = (luma(rgb.float()) * 255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
    return grey[:, 0].cpu().numpy()


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
        self._dis = DisFlow(preset) if flow == "dis" else None
        self._torch_flow = TorchFlow() if flow == "torch" else None
        self.reset()

    def reset(self) -> None:
        self._lr: Tensor | None = None
        self._grey: np.ndarray | Tensor | None = None
        self._out: Tensor | None = None
        self._noise_floor = 0.0

    def __call__(self, lr: Tensor, restored: Tensor, new_scene: Sequence[bool]) -> Tensor:
        # DIS takes uint8 luma on the host (one transfer for the batch); the torch flow float luma
        # where the frames are
        greys: np.ndarray | Tensor = _grey_u8(lr) if self._dis is not None else luma(lr.float())
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

    def _motion(self, grey: np.ndarray | Tensor, device: torch.device) -> Tensor:
        """Backward flow ``1 x 2 x h x w`` from this frame's luma to the previous frame's."""
        assert self._grey is not None
        if self._dis is not None:
            assert isinstance(grey, np.ndarray) and isinstance(self._grey, np.ndarray)
            return torch.from_numpy(self._dis(grey, self._grey)).permute(2, 0, 1)[None].to(device)
        assert self._torch_flow is not None and isinstance(grey, Tensor) and isinstance(self._grey, Tensor)
        return self._torch_flow(grey[None], self._grey[None])

    def _smooth(self, cur_lr: Tensor, grey: np.ndarray | Tensor, cur: Tensor) -> Tensor:
        assert self._lr is not None and self._grey is not None and self._out is not None
        flow = self._motion(grey, cur_lr.device)
        confidence = warp_confidence(
            warp(self._lr, flow),
            cur_lr,
            inside(flow),
            tolerance=self.tolerance,
            noise_floor=self._noise_floor,
        )
        # bicubic overshoots at edges; clamped so that the recursion cannot carry it on
        warped = warp_upscaled(self._out, flow).clamp_(0.0, 1.0)
        weight = F.interpolate(confidence, size=cur.shape[-2:], mode="bilinear", align_corners=False)
        return blend(cur, warped, weight.mul_(self.strength))
