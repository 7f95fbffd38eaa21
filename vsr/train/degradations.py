"""How a training pair's low-resolution input is made from its high-resolution patch.

`Degradation` is the extension point and `DEGRADATIONS` the registry of its implementations:
"bicubic" (here) trains PSNR-oriented models on exactly the evaluation protocol's input;
"realistic" (`vsr.train.realistic`: blur, resize, noise, JPEG and H.264 through PyAV) trains
models for real video, drawing its random parameters from the generator it is given so runs stay
reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from vsr.errors import ConfigError
from vsr.ops.resize import resize
from vsr.train.realistic import RealisticDegradation

__all__ = ["DEGRADATIONS", "BicubicDegradation", "Degradation", "make_degradation"]


class Degradation(Protocol):
    """uint8 ``N x 3 x H x W`` HR patches -> float32 ``N x 3 x H/s x W/s`` LR inputs in [0, 1].

    ``rng`` is the only source of randomness allowed, so a batch is a pure function of the
    recipe's seed and the step (resuming a run gives the same batches).
    """

    scale: int

    def __call__(self, hr: Tensor, rng: np.random.Generator) -> Tensor: ...


class BicubicDegradation:
    """MATLAB ``imresize(HR, 1/scale, 'bicubic')`` (antialiased), rounded to 8 bits.

    The same computation as `vsr.quality.degrade`, in float64 on 0..255 and rounded half away from
    zero, so a model is trained on exactly the inputs it is evaluated on; the rounding matters
    because a network fed 8-bit video never sees the in-between values.
    """

    def __init__(self, scale: int, *, quantize: bool = True) -> None:
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        self.scale = scale
        self.quantize = quantize

    def __call__(self, hr: Tensor, rng: np.random.Generator) -> Tensor:
        if hr.dtype != torch.uint8 or hr.dim() != 4:
            raise ValueError(
                f"bicubic degradation needs uint8 N x C x H x W, got {hr.dtype} {tuple(hr.shape)}"
            )
        h, w = hr.shape[-2:]
        if h % self.scale or w % self.scale:
            raise ValueError(f"patch {w}x{h} is not a multiple of scale {self.scale}")
        lr = resize(hr.to(torch.float64), (h // self.scale, w // self.scale), kernel="bicubic")
        if self.quantize:
            lr = torch.floor(lr.clamp(0.0, 255.0) + 0.5)
        return (lr / 255.0).to(torch.float32)


DEGRADATIONS: dict[str, Callable[[int], Degradation]] = {
    "bicubic": BicubicDegradation,
    "realistic": RealisticDegradation,
}


def make_degradation(name: str, scale: int) -> Degradation:
    try:
        factory = DEGRADATIONS[name]
    except KeyError:
        raise ConfigError(f"unknown degradation {name!r}; available: {', '.join(DEGRADATIONS)}") from None
    return factory(scale)
