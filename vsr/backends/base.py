"""The `Backend` protocol and the registry that creates backends by name.

A backend does one thing: run a batch through the model on its device. Heavy imports (TensorRT,
onnxruntime) happen inside the factory, when the backend is created, never at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from vsr.errors import ConfigError
from vsr.models.descriptor import LoadedModel, Precision

__all__ = ["Backend", "BackendOptions", "available_backends", "create_backend", "register_backend"]


@runtime_checkable
class Backend(Protocol):
    name: str
    device: torch.device
    precision: Precision

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float32 on ``device`` -> (N, C, sH, sW) float32 on ``device``.

        H and W are already multiples of the model's size multiple.
        """
        ...


@dataclass(frozen=True, kw_only=True)
class BackendOptions:
    device: torch.device
    precision: Precision
    channels_last: bool = True
    compile: bool = False  # torch: run a frozen torch.compile (inductor) build per input shape
    cuda_graph: bool = False  # torch on CUDA: replay a captured CUDA graph per input shape
    engine: Path | None = None  # tensorrt(-rtx): this engine (as the plan chose it), not the newest valid one


BackendFactory = Callable[[LoadedModel, BackendOptions], Backend]
_REGISTRY: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    if name in _REGISTRY:
        raise ValueError(f"backend {name!r} is registered twice")
    _REGISTRY[name] = factory


def available_backends() -> list[str]:
    return sorted(_REGISTRY)


def create_backend(name: str, model: LoadedModel, options: BackendOptions) -> Backend:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown backend {name!r}; choose one of: {', '.join(available_backends())}"
        ) from None
    return factory(model, options)
