"""A PReLU for bf16 channels_last on the CPU that does not fall off oneDNN's vector path.

PyTorch's PReLU kernel (torch 2.13, this CPU) is vectorised over channels: for bf16
channels_last tensors with fewer channels than a 512-bit vector holds (32 bf16) it runs a scalar
loop. At the 16 features of fast-x2/fast-x4 one PReLU of a 640x360 frame took 12.7 ms against
0.5 ms contiguous, and the network's PReLUs were two thirds of its time (`tools/bench_prelu.py`,
docs/BENCHMARKS.md). ``relu(x) + w * min(x, 0)`` is the same function with the same rounding
(one of the two terms is exactly zero, the other is the one product PReLU rounds too), made of
elementwise kernels that stay vectorised: 2.1 ms for the same tensor, 9.0 against 43.4 ms at
1080x720. From 32 channels on the native kernel is kept: at 32 and 64 it is the faster one, and
at 48 the split form won at 640x360 (6.7 against 13.6 ms) but lost at 1080x720 (123 against 70).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SplitPReLU", "needs_split_prelu", "split_slow_prelus"]

_BF16_LANES = 32  # bf16 values in a 512-bit vector: below it the native kernel is scalar


class SplitPReLU(nn.Module):
    """`nn.PReLU` computed as ``relu(x) + w * min(x, 0)``; shares the original's weight."""

    def __init__(self, prelu: nn.PReLU) -> None:
        super().__init__()
        self.weight = prelu.weight
        self.num_parameters = prelu.num_parameters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.view(1, -1, 1, 1) if self.num_parameters > 1 and x.dim() == 4 else self.weight
        return F.relu(x) + w * x.clamp(max=0)


def needs_split_prelu(module: nn.PReLU) -> bool:
    """True where the native kernel is the slow one: a per-channel PReLU of 2 to 31 channels."""
    return 1 < module.num_parameters < _BF16_LANES


def split_slow_prelus(module: nn.Module) -> int:
    """Replace, in place, every PReLU of ``module`` that `needs_split_prelu`; return how many."""
    swapped = 0
    for name, child in module.named_children():
        if isinstance(child, nn.PReLU) and needs_split_prelu(child):
            setattr(module, name, SplitPReLU(child))
            swapped += 1
        else:
            swapped += split_slow_prelus(child)
    return swapped
