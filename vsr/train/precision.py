"""Training precision: which one a recipe's ``precision`` means on a device, and its autocast."""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import torch

from vsr.backends.device import cpu_has_fast_bf16
from vsr.errors import ConfigError

__all__ = ["AMP_DTYPES", "TrainingPrecision", "autocast", "resolve_training_precision"]

TrainingPrecision = Literal["fp32", "bf16", "fp16"]
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_training_precision(requested: str, device: torch.device) -> TrainingPrecision:
    """auto: bf16 on CUDA GPUs that have it (fp16 otherwise) and on CPUs with native bf16, else fp32."""
    if requested == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    if requested == "fp16" and device.type != "cuda":
        raise ConfigError('fp16 training needs a CUDA GPU; use precision = "bf16" or "fp32" on the CPU')
    if requested not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"unknown precision {requested!r}; use auto, fp32, bf16 or fp16")
    return requested  # type: ignore[return-value]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """Mixed-precision forward in ``dtype``; fp32 training (``None``) runs as written."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
