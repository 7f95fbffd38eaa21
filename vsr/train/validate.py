"""Validation during training: mean Y-PSNR of a module on an eval folder, by the `vsr eval` protocol.

The ground truths and their bicubic LR inputs are made once (`vsr.quality.degrade`); each
validation runs the module through `ModelUpscaler`, the same code `vsr eval` uses, in float32, so
the numbers in the training log are the ones `vsr eval` would print for the exported weights.
The same outputs give the sharpness statistic (`vsr.quality.gradient_ratio`), which a GAN run
needs because PSNR alone cannot tell restored texture from blur.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from torch import nn

from vsr.models import LoadedModel, ModelDescriptor
from vsr.quality import ModelUpscaler, degrade, find_images, gradient_ratio, load_image, modcrop, psnr_y

__all__ = ["ValidationScores", "ValidationSet"]


@dataclass(frozen=True, kw_only=True)
class ValidationScores:
    psnr_y: float  # mean over the images, dB
    gradient_ratio: float  # output's mean gradient magnitude over the ground truth's, whole set


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

    def scores(self, module: nn.Module, descriptor: ModelDescriptor, *, device: str) -> ValidationScores:
        """Mean Y-PSNR and the gradient ratio of ``module`` on the folder, ``scale`` pixels shaved."""
        loaded = LoadedModel(module=module, descriptor=descriptor)
        # ModelUpscaler copies the module, so the caller's (EMA) weights are never touched.
        upscale = ModelUpscaler(loaded, device=device, precision="fp32")
        outputs = [upscale(p.lr) for p in self._pairs]
        truths = [p.hr for p in self._pairs]
        psnrs = [psnr_y(sr, hr, crop=self.scale) for sr, hr in zip(outputs, truths, strict=True)]
        return ValidationScores(
            psnr_y=math.fsum(psnrs) / len(psnrs),
            gradient_ratio=gradient_ratio(outputs, truths, crop=self.scale),
        )

    def psnr_y(self, module: nn.Module, descriptor: ModelDescriptor, *, device: str) -> float:
        """Mean Y-PSNR (dB, ``scale`` pixels shaved) of ``module`` on the folder."""
        return self.scores(module, descriptor, device=device).psnr_y
