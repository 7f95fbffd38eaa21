"""Backend selection, precision choice, and bf16 accuracy on real frames."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vsr.backends import BackendOptions, cpu_has_fast_bf16, create_backend, resolve_device, resolve_precision
from vsr.errors import ConfigError, DeviceError
from vsr.models import load_model


def _frames(shared: Path, count: int = 2) -> torch.Tensor:
    out = []
    with av.open(str(shared / "video" / "bigbuckbunny.mp4")) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 40 == 0:
                rgb = frame.reformat(width=160, height=90, format="rgb24", interpolation="AREA").to_ndarray()
                out.append(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255)
            if len(out) == count:
                break
    return torch.stack(out)


def test_bf16_output_is_within_45_db_of_fp32_on_real_frames(shared_data: Path) -> None:
    model = load_model(shared_data / "weights" / "realesr-animevideov3.pth")
    x = _frames(shared_data)
    cpu = torch.device("cpu")
    ref = create_backend(
        "torch", model, BackendOptions(device=cpu, precision="fp32", channels_last=False)
    ).run(x)
    out = create_backend("torch", model, BackendOptions(device=cpu, precision="bf16")).run(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape == (2, 3, 360, 640)
    mse = float(((out.clamp(0, 1) - ref.clamp(0, 1)) ** 2).mean())
    psnr = 10 * math.log10(1 / mse)
    assert 45.0 <= psnr < 90.0, psnr  # an upper bound too: bf16 must actually have been used


def test_auto_precision_follows_the_device_and_the_cpu() -> None:
    model = load_model("bicubic", scale=2)
    cpu = torch.device("cpu")
    expected = "bf16" if cpu_has_fast_bf16() else "fp32"
    assert resolve_precision("auto", cpu, model.descriptor) == expected
    assert resolve_precision("auto", torch.device("cuda"), model.descriptor) == "fp16"
    assert resolve_precision("fp32", cpu, model.descriptor) == "fp32"
    with pytest.raises(DeviceError, match="fp16 is not supported on the CPU"):
        resolve_precision("fp16", cpu, model.descriptor)
    with pytest.raises(DeviceError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", cpu, model.descriptor)


def test_device_and_backend_errors_name_the_fix() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="use --device cpu"):
            resolve_device("cuda")
    model = load_model("lanczos", scale=2)
    with pytest.raises(
        ConfigError,
        match="unknown backend 'tensorrt-x'; choose one of: onnxruntime, tensorrt, tensorrt-rtx, torch",
    ):
        create_backend("tensorrt-x", model, BackendOptions(device=torch.device("cpu"), precision="fp32"))


def test_backend_leaves_the_callers_module_untouched() -> None:
    model = load_model("bicubic", scale=2)
    create_backend("torch", model, BackendOptions(device=torch.device("cpu"), precision="bf16"))
    params = list(model.module.parameters()) + list(model.module.buffers())
    assert all(p.dtype == torch.float32 for p in params if p.is_floating_point())
