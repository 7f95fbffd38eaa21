"""PyTorch backend: eager (or compiled) inference on the CPU or a CUDA GPU."""

from __future__ import annotations

import copy

import torch

from vsr.backends.base import Backend, BackendOptions
from vsr.errors import DeviceError, ModelError
from vsr.models.descriptor import LoadedModel

__all__ = ["TorchBackend"]

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchBackend:
    """Runs the model's own module with its weights cast once to the run precision.

    Casting the weights (rather than autocast) avoids re-casting them on every call; inputs are
    cast on the way in and the output comes back as float32.
    """

    name = "torch"

    def __init__(self, model: LoadedModel, options: BackendOptions) -> None:
        if model.descriptor.task != "sr":
            # run(batch) calls module(batch); a denoiser also needs its noise level
            raise ModelError(
                f"model {model.descriptor.name} is a denoiser, not a super-resolution model; use an SR model here"
            )
        if options.precision not in model.descriptor.precisions:
            raise DeviceError(
                f"model {model.descriptor.name} does not support {options.precision}; "
                f"use --precision {'/'.join(sorted(model.descriptor.precisions))}"
            )
        if options.device.type == "cuda" and not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but torch sees no CUDA GPU; use --device cpu")
        self.device = options.device
        self.precision = options.precision
        self._dtype = DTYPES[options.precision]
        self._memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        # a private copy: the caller's module stays in fp32 on its device (it may be shared)
        module = copy.deepcopy(model.module).eval().requires_grad_(False)
        module = module.to(device=self.device, dtype=self._dtype, memory_format=self._memory_format)
        self._module: torch.nn.Module = torch.compile(module) if options.compile else module

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(dtype=self._dtype, memory_format=self._memory_format)
        with torch.inference_mode():
            y = self._module(x)
        return y.to(dtype=torch.float32, memory_format=torch.contiguous_format)


def create_torch_backend(model: LoadedModel, options: BackendOptions) -> Backend:
    return TorchBackend(model, options)
