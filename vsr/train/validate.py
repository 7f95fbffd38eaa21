"""Validation during training: mean Y-PSNR of a module on an eval folder, by the `vsr eval` protocol.

The ground truths and their bicubic LR inputs are made once (`vsr.quality.degrade`); each
validation runs the module through `ModelUpscaler`, the same code `vsr eval` uses, in float32, so
the numbers in the training log are the ones `vsr eval` would print for the exported weights.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from torch import nn

from vsr.models import LoadedModel, ModelDescriptor
from vsr.quality import ModelUpscaler, degrade, find_images, load_image, modcrop, psnr_y

__all__ = ["ValidationSet"]


@dataclass(frozen=True)
class _Pair:
    name: str
    lr: NDArray[np.uint8]
    hr: NDArray[np.uint8]


class ValidationSet:
    """The images of an eval folder (PNG/BMP/TIFF), prepared once for repeated scoring."""

    def __init__(self, folder: str | os.PathLike[str], scale: int) -> None:
        self.folder = str(folder)
        self.scale = scale
        pairs = []
        for path in find_images(folder):
            hr = modcrop(load_image(path), scale)
            pairs.append(_Pair(path.name, degrade(hr, scale), hr))
        self._pairs = tuple(pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def psnr_y(self, module: nn.Module, descriptor: ModelDescriptor, *, device: str) -> float:
        """Mean Y-PSNR (dB, ``scale`` pixels shaved) of ``module`` on the folder."""
        loaded = LoadedModel(module=module, descriptor=descriptor)
        # ModelUpscaler copies the module, so the caller's (EMA) weights are never touched.
        upscale = ModelUpscaler(loaded, device=device, precision="fp32")
        scores = [psnr_y(upscale(p.lr), p.hr, crop=self.scale) for p in self._pairs]
        return math.fsum(scores) / len(scores)
