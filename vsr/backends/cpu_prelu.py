"""A PReLU for bf16 channels_last on the CPU that stays on PyTorch's vector path, compiled or not.

PyTorch's PReLU kernel (torch 2.13) is vectorised over channels: for a bf16 channels_last tensor
whose channel count is not a multiple of a 512-bit vector's 32 values it runs a scalar loop. At
the 16 features of fast-x2/fast-x4 one PReLU of a 640x360 frame took 20 ms. In channels_last the
values of consecutive pixels follow each other, so the same tensor can be read as rows of
``lcm(C, 32)`` values (two pixels of 16 channels make one row of 32) with the slopes repeated
along the row: the same function on the same values, which the kernel runs vectorised (0.74 ms
for that tensor, one pass). `tools/bench_prelu.py` measures it against the native kernel.

In a torch.compile build the row form is a custom operator (``vsr::prelu_rows``), called as
one kernel instead of decomposing it into inductor's own loop, which ran over one pixel's 16
channels at a time (2.9 ms a PReLU). Inputs it cannot view that way (another layout, a pixel
count the repeat does not divide) go to the native kernel, so the result is PReLU's in every case.
An earlier form, ``relu(x) + w * min(x, 0)``, was exact too but took four passes (2.2 ms).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RowPReLU", "needs_row_prelu", "prelu_rows", "use_row_prelus"]

_BF16_LANES = 32  # bf16 values in a 512-bit vector: the native kernel is vectorised per this many channels


def _prelu_rows(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    channels = weight.numel()
    if x.dim() == 4 and channels == x.shape[1] and x.is_contiguous(memory_format=torch.channels_last):
        repeat = _BF16_LANES // math.gcd(channels, _BF16_LANES)
        n, c, h, w = x.shape
        if (n * h * w) % repeat == 0:
            rows = x.permute(0, 2, 3, 1).reshape(-1, c * repeat)  # a view: no copy in channels_last
            out = F.prelu(rows, weight.repeat(repeat))
            return out.reshape(n, h, w, c).permute(0, 3, 1, 2)
    return F.prelu(x, weight)


@torch.library.custom_op("vsr::prelu_rows", mutates_args=())
def prelu_rows(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """PReLU of an ``N x C x H x W`` channels_last tensor computed over rows of ``lcm(C, 32)``."""
    return _prelu_rows(x, weight)


@prelu_rows.register_fake
def _prelu_rows_fake(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)  # the layout of the input, as both branches give


class RowPReLU(nn.Module):
    """`nn.PReLU` through `prelu_rows`; shares the original's weight."""

    def __init__(self, prelu: nn.PReLU) -> None:
        super().__init__()
        self.weight = prelu.weight
        self.num_parameters = prelu.num_parameters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return prelu_rows(x, self.weight)
        # eagerly, the function itself: a custom op's first call imports torch._dynamo (0.8 s),
        # which a live feed's first frame would wait for
        return _prelu_rows(x, self.weight)


def needs_row_prelu(module: nn.PReLU) -> bool:
    """True where the native kernel is the slow one: per-channel slopes, not a multiple of 32."""
    return module.num_parameters > 1 and module.num_parameters % _BF16_LANES != 0


def use_row_prelus(module: nn.Module) -> int:
    """Replace, in place, every PReLU of ``module`` that `needs_row_prelu`; return how many."""
    swapped = 0
    for name, child in module.named_children():
        if isinstance(child, nn.PReLU) and needs_row_prelu(child):
            setattr(module, name, RowPReLU(child))
            swapped += 1
        else:
            swapped += use_row_prelus(child)
    return swapped
