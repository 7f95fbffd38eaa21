"""Parity of a freshly built engine: its output against PyTorch fp32 on the same GPU, as a PSNR.

Runs only where the engine can run (a CUDA GPU, and for TensorRT-RTX one among its targets);
otherwise the manifest records None and why. The input is a fixed, smooth pseudo-image (seeded
noise upsampled 8x: closer to video than white noise, whose fp16 error is not representative)
no larger than 256x256, within the engine's first profile.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from vsr.engines.manifest import EngineManifest
from vsr.engines.profiles import ShapeProfile
from vsr.engines.targets import RTX_DEFAULT_TARGETS, GpuInfo
from vsr.errors import EngineError
from vsr.models.descriptor import LoadedModel

__all__ = ["FP16_EXPECTED_DB", "PARITY_FLOOR_DB", "measure_parity", "probe_shape", "psnr"]

log = logging.getLogger(__name__)

# Below this the engine computes something other than the model: the build fails.
PARITY_FLOOR_DB = 30.0
# What vsr asks of fp16 on a GPU; an fp16 engine below it is kept, with a warning.
FP16_EXPECTED_DB = 45.0
_MAX_PSNR = 200.0  # identical outputs; JSON has no infinity
_PROBE_SIDE = 256


def probe_shape(profile: ShapeProfile, size_multiple: int) -> tuple[int, int, int, int]:
    """Batch 1, the profile's channels, the opt size capped at 256 (kept within min and max)."""
    cap = max(size_multiple, _PROBE_SIDE // size_multiple * size_multiple)
    h = min(max(profile.min[2], min(profile.opt[2], cap)), profile.max[2])
    w = min(max(profile.min[3], min(profile.opt[3], cap)), profile.max[3])
    return (1, profile.min[1], h, w)


def psnr(output: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB of two [0, 1] images (clipped first, as a video frame would be)."""
    mse = float(((output.clamp(0, 1) - reference.clamp(0, 1)) ** 2).mean())
    return _MAX_PSNR if mse == 0 else min(_MAX_PSNR, 10 * math.log10(1 / mse))


def _probe_input(shape: tuple[int, int, int, int], device: torch.device) -> torch.Tensor:
    n, c, h, w = shape
    coarse = torch.rand(n, c, -(-h // 8), -(-w // 8), generator=torch.Generator().manual_seed(0))
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).to(device)


def _reference(model: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    module = copy.deepcopy(model.module).eval().requires_grad_(False).to(device=x.device, dtype=torch.float32)
    # TF32 convolutions (PyTorch's default on Ampere+) would make the reference itself inexact
    with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        return module(x)


def measure_parity(
    model: LoadedModel, engine_path: Path, manifest: EngineManifest, gpu: GpuInfo | None
) -> tuple[float | None, str]:
    """(PSNR in dB, how it was measured), or (None, why not)."""
    if gpu is None:
        return None, f"not measured: no CUDA GPU where it was built (built for {manifest.devices})"
    here = f"{gpu.name} (sm {gpu.compute_capability})"
    if manifest.builder == "tensorrt-rtx":
        if gpu.compute_capability not in (manifest.target_compute_capabilities or RTX_DEFAULT_TARGETS):
            return None, f"not measured: the build GPU {here} is not among its targets ({manifest.devices})"
    from vsr.backends.base import BackendOptions
    from vsr.backends.tensorrt_backend import TensorRTBackend

    device = torch.device("cuda", torch.cuda.current_device())
    backend = TensorRTBackend(
        model,
        BackendOptions(device=device, precision=manifest.precision),
        builder=manifest.builder,
        engine_path=engine_path,
        manifest=manifest,
        runtime_cache=False,  # the engine is still under its temporary name
    )
    shape = probe_shape(manifest.profiles[0], manifest.size_multiple)
    x = _probe_input(shape, device)
    value = psnr(backend.run(x), _reference(model, x))
    note = f"measured on {here}, {shape[3]}x{shape[2]} input, against PyTorch fp32 with TF32 off"
    if value < PARITY_FLOOR_DB:
        raise EngineError(
            f"the built engine does not compute the model: PSNR {value:.1f} dB against PyTorch fp32 "
            f"(below {PARITY_FLOOR_DB:.0f} dB); it was not kept, report it with --debug"
        )
    if manifest.precision == "fp16" and value < FP16_EXPECTED_DB:
        log.warning(
            "fp16 engine parity is %.1f dB against PyTorch fp32, below the %.0f dB vsr expects",
            value,
            FP16_EXPECTED_DB,
        )
    return round(value, 2), note
