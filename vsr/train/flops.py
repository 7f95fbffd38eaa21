"""FLOPs per input pixel, counted from the convolutions a module actually runs.

A multiply-add counts as 2 FLOP; biases, activations, pixel shuffles and the residual add are not
counted (under 1% for the networks here). The count comes from running the module once on a small
zero input with hooks on every convolution, so it follows the real forward pass (skipped layers,
strides, groups) rather than a formula that could drift from the code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["conv_flops", "conv_flops_per_pixel", "parameter_count"]


def _conv_flops(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    if isinstance(module, nn.ConvTranspose2d):
        # Each input element is multiplied into a kh x kw x (out/groups) footprint.
        kh, kw = module.kernel_size
        return 2 * inputs[0].numel() * (module.out_channels // module.groups) * kh * kw
    assert isinstance(module, nn.Conv2d)
    kh, kw = module.kernel_size
    return 2 * output.numel() * (module.in_channels // module.groups) * kh * kw


def conv_flops(module: nn.Module, input_shape: tuple[int, int, int, int], *args: object) -> int:
    """FLOPs of the convolutions in one forward pass on an input of ``input_shape`` (N, C, H, W).

    ``args`` follow the image in the call: a denoiser's noise level, for instance.
    """
    total = 0

    def hook(mod: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        total += _conv_flops(mod, inputs, output)

    handles = [
        m.register_forward_hook(hook)
        for m in module.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    was_training = module.training
    # eval mode: a counting pass must not update normalisation statistics
    module.eval()
    try:
        with torch.no_grad():
            module(torch.zeros(input_shape, device=device, dtype=dtype), *args)
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    return total


def conv_flops_per_pixel(module: nn.Module, *args: object, in_channels: int = 3, size: int = 32) -> float:
    """Convolution FLOPs per input pixel, measured on a ``size x size`` input (``args`` as `conv_flops`).

    Exact for "same"-padded fully convolutional networks; ``size`` must be a multiple of the
    model's size multiple.
    """
    return conv_flops(module, (1, in_channels, size, size), *args) / (size * size)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
