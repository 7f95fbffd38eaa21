"""Convolution + ReLU as one oneDNN primitive on the CPU, for inference.

Eager PyTorch runs ``relu_(conv2d(x))`` as two passes: the convolution writes its output, the ReLU
reads and writes it again. oneDNN can apply the ReLU as the convolution stores each block (a
"post-op"); PyTorch exposes that as ``torch.ops.mkldnn._convolution_pointwise``, the op inductor
itself emits for a conv followed by a ReLU on the CPU. The result is the same, bit for bit
(`tests/test_denoise.py`); denoise-lite in bf16 channels_last on one core takes 12.35 instead of
12.74 ms for a 176x144 frame and 50.21 instead of 52.07 for 384x288
(`tools/bench_denoise_share.py --unfused`, docs/BENCHMARKS.md).

Used only where it applies: a CPU tensor, no autograd (the op has no backward), not while
tracing, exporting or compiling a graph (those see the plain ops, which TensorRT and inductor fuse
themselves), no forward hooks (a FLOP counter's, a profiler's: they expect the conv called), an
``nn.Conv2d`` with zero padding of explicit size and groups 1, and a PyTorch build that has the op
and can run it. Everywhere else it is the two plain ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["conv_relu"]

_POINTWISE = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None)


def _fusable(conv: nn.Conv2d, x: Tensor) -> bool:
    if _POINTWISE is None or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.bfloat16):
        return False
    if torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad):
        return False
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return False
    if torch.onnx.is_in_onnx_export() or _hooked(conv):
        return False
    return (
        conv.padding_mode == "zeros"
        and conv.groups == 1
        and isinstance(conv.padding, tuple)
        and conv.weight.dtype == x.dtype
    )


def _hooked(conv: nn.Conv2d) -> bool:
    """Forward hooks on the conv, or on every module, expect it to be called (`vsr.train.flops`)."""
    from torch.nn.modules import module as torch_module

    return bool(
        conv._forward_hooks
        or conv._forward_pre_hooks
        or torch_module._global_forward_hooks
        or torch_module._global_forward_pre_hooks
    )


def conv_relu(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``relu(conv(x))``, as one oneDNN primitive where that applies (see the module's docstring)."""
    global _POINTWISE
    if _fusable(conv, x):
        assert _POINTWISE is not None
        try:
            return _POINTWISE(
                x,
                conv.weight,
                conv.bias,
                list(conv.padding),
                list(conv.stride),
                list(conv.dilation),
                conv.groups,
                "relu",
                [],
                None,
            )
        except (RuntimeError, NotImplementedError):
            # a build whose oneDNN cannot run it here (another CPU architecture): the plain ops from now on
            _POINTWISE = None
    return F.relu(conv(x), inplace=True)
