"""`ModelDescriptor`: what the pipeline needs to know about a model, travelling with it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from torch import nn

__all__ = ["LoadedModel", "ModelDescriptor", "Precision", "Task"]

Precision = Literal["fp32", "fp16", "bf16"]
Task = Literal["sr", "denoise"]


@dataclass(frozen=True, kw_only=True)
class ModelDescriptor:
    """Facts about a model that padding, batching, tiling and engines read.

    The model maps ``N x in_channels x H x W`` RGB in [0, 1] (float) to
    ``N x out_channels x scale*H x scale*W``; H and W must be multiples of ``size_multiple``
    (the caller pads). ``receptive_radius`` is how many input pixels around a pixel influence
    its output: the minimum tile overlap for seamless tiling.

    ``task`` says how the module is called: ``"sr"``, ``module(x)``; ``"denoise"``,
    ``module(x, sigma)`` with scale 1, sigma being the noise level in the image's [0, 1] units
    (sigma/255), a float or one value per image. The noise level is an input of the model, not
    a pixel channel of the video, so ``in_channels`` stays 3.
    """

    architecture: str  # "compact", "rrdb", "ffdnet", "bicubic", "lanczos", "spandrel-SwinIR", ...
    name: str  # what the user named: a built-in name or the checkpoint's file name
    scale: int
    task: Task = "sr"
    in_channels: int = 3
    out_channels: int = 3
    size_multiple: int = 1
    precisions: frozenset[Precision] = frozenset({"fp32", "fp16", "bf16"})
    temporal_window: int = 1
    receptive_radius: int = 0
    parameters: int = 0
    hyperparameters: Mapping[str, int | float | str] = field(default_factory=dict)
    sha256: str | None = None  # of the checkpoint file, when loaded from one

    def summary(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self.hyperparameters.items())
        what = f"x{self.scale}" if self.task == "sr" else "denoiser"
        return f"{self.name} ({self.architecture} {what}{', ' + hp if hp else ''})"


@dataclass(frozen=True)
class LoadedModel:
    module: nn.Module
    descriptor: ModelDescriptor
