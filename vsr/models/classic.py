"""Classic (non-learned) upscalers, bicubic and Lanczos, wearing the same interface as the networks.

They are the baseline every SR result is compared to and the fallback when no checkpoint is given.
They use MATLAB ``imresize`` semantics (half-pixel centres, symmetric borders) from `vsr.ops.resize`.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from vsr.models.descriptor import LoadedModel, ModelDescriptor
from vsr.ops.resize import resize

__all__ = ["CLASSIC_KERNELS", "ClassicKernel", "ClassicResize", "classic_model"]

ClassicKernel = Literal["bicubic", "lanczos"]
# kernel -> receptive radius in input pixels (half the kernel width at upscale)
CLASSIC_KERNELS: dict[str, int] = {"bicubic": 2, "lanczos": 3}


class ClassicResize(nn.Module):
    """``N x C x H x W`` -> ``N x C x sH x sW`` by separable bicubic or Lanczos-3; no clamping."""

    def __init__(self, kernel: ClassicKernel, scale: int) -> None:
        super().__init__()
        if kernel not in CLASSIC_KERNELS:
            raise ValueError(
                f"unknown classic kernel {kernel!r}; expected one of {', '.join(CLASSIC_KERNELS)}"
            )
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        self.kernel: ClassicKernel = kernel
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2], x.shape[-1]
        return resize(x, (h * self.scale, w * self.scale), kernel=self.kernel, border="symmetric")


def classic_model(kernel: ClassicKernel, scale: int) -> LoadedModel:
    module = ClassicResize(kernel, scale).eval()
    descriptor = ModelDescriptor(
        architecture=kernel,
        name=kernel,
        scale=scale,
        receptive_radius=CLASSIC_KERNELS[kernel],
        parameters=0,
        precisions=frozenset({"fp32", "bf16", "fp16"}),
        hyperparameters={"kernel": kernel},
    )
    return LoadedModel(module=module, descriptor=descriptor)
