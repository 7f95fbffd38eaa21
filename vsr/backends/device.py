"""Choosing the device and precision: `--device auto` and `--precision auto`."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from vsr.errors import DeviceError
from vsr.models.descriptor import ModelDescriptor, Precision

__all__ = ["cpu_has_fast_bf16", "resolve_device", "resolve_precision"]


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True where the CPU runs bf16 convolutions natively (AMX or AVX512-BF16).

    On such CPUs oneDNN runs bf16 channels_last convolutions about 10x faster than fp32 (measured
    on this project's machines, see docs/BENCHMARKS.md); elsewhere bf16 is emulated and slower.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {requested!r}: use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {requested} requested but torch sees no CUDA GPU; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"device {requested!r} is not supported: use auto, cpu, cuda or cuda:N")
    return device


def resolve_precision(requested: str, device: torch.device, descriptor: ModelDescriptor) -> Precision:
    """`auto`: fp16 on CUDA, bf16 on CPUs with native bf16, fp32 otherwise (if the model allows)."""
    supported = descriptor.precisions
    if requested != "auto":
        if requested not in ("fp32", "fp16", "bf16"):
            raise DeviceError(f"unknown precision {requested!r}: use auto, fp32, fp16 or bf16")
        if requested not in supported:
            raise DeviceError(
                f"model {descriptor.name} does not support {requested}; supported: {', '.join(sorted(supported))}"
            )
        if requested == "fp16" and device.type == "cpu":
            raise DeviceError("fp16 is not supported on the CPU; use --precision bf16 or fp32")
        return requested  # type: ignore[return-value]
    if device.type == "cuda" and "fp16" in supported:
        return "fp16"
    if device.type == "cpu" and cpu_has_fast_bf16() and "bf16" in supported:
        return "bf16"
    return "fp32"
