"""FFDNet-style denoiser: a plain 3x3 conv stack at half resolution, told the noise level.

Zhang, Zuo and Zhang, "FFDNet: Toward a Fast and Flexible Solution for CNN based Image Denoising"
(2018). The RGB image is pixel-unshuffled by 2 (4 x 3 channels at H/2 x W/2) and one channel of
the noise level sigma (in [0, 1] units, i.e. sigma/255 for 8-bit images) is appended; ``depth``
3x3 convolutions with ReLU between them (no batch norm, so nothing has to be folded for
inference) run at half resolution, and a pixel shuffle brings the result back to H x W.

Choices that differ from the paper, and why:

- One noise-level channel shared by the three colours (the paper's colour model has one per
  colour): the pipeline's pre-pass has one sigma per frame, training draws one per patch, and the
  first conv is cheaper. KAIR's PyTorch FFDNet makes the same choice.
- The network predicts the noise, which is subtracted from the input (residual learning, as
  DnCNN), instead of the clean image: it trains faster, and at sigma 0 the identity is easy.
- vsr's own state-dict layout (``conv_in``, ``body.N``, ``conv_out``): checkpoints of the
  original FFDNet or of KAIR do not load (their keys, input layout and output differ).

Cost (`vsr.train.flops`, 2 FLOP per multiply-add, per input pixel): the default 80 features x 13
convs is 325,800 FLOP/pixel, 0.244 of colour DnCNN (CDnCNN-B: 20 convs of 64 features at full
resolution, 3 in/out channels: 1,334,016 FLOP/pixel). FFDNet's own colour size, 96 x 12, is
425,520 (426,384 with the paper's three noise channels), 0.32 of DnCNN: over the budget of a
quarter, so the width is cut to 80 (a multiple of 16, which oneDNN and tensor cores like) and
the depth kept near the paper's (13 convs: the 333,504 budget has room for one more than 12).

Padding lives with the caller, as for every vsr model: the descriptor's ``size_multiple`` is 2
and odd sizes are refused with a message saying so (`vsr.ops.tiling.pad_to_multiple` pads).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vsr.errors import ModelError
from vsr.models._cpu_conv import conv_relu
from vsr.models._weights import fit_weights
from vsr.models.descriptor import LoadedModel, ModelDescriptor

__all__ = ["DEFAULT_DEPTH", "DEFAULT_NUM_FEAT", "FFDNet", "build_ffdnet", "is_ffdnet"]

DEFAULT_NUM_FEAT = 80
DEFAULT_DEPTH = 13
_UNSHUFFLE = 2
_BODY_KEY = re.compile(r"body\.(\d+)\.(weight|bias)")
_ENDS = frozenset({"conv_in.weight", "conv_in.bias", "conv_out.weight", "conv_out.bias"})


class FFDNet(nn.Module):
    """``forward(x, sigma)``: noisy ``N x C x H x W`` in [0, 1] -> denoised, same size; no clamping.

    ``sigma`` is the noise standard deviation in the image's units ([0, 1]: sigma/255 for 8-bit
    noise levels): a float for the whole batch, or a tensor with one value per image (shape
    ``N`` or ``N x 1 x 1 x 1``), which is the second input of an exported graph, or a per-pixel
    map (``N x 1 x H x W``, averaged over each 2x2 block to the half-resolution noise channel;
    FFDNet's spatially variant noise level). H and W must be
    even. The residual is subtracted in the promoted dtype of the input and the network's output,
    so under autocast with a float32 input the result stays float32.
    """

    def __init__(
        self, in_ch: int = 3, *, num_feat: int = DEFAULT_NUM_FEAT, depth: int = DEFAULT_DEPTH
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"FFDNet needs depth >= 2 (an input and an output conv), got {depth}")
        packed = in_ch * _UNSHUFFLE * _UNSHUFFLE
        self.in_ch = in_ch
        self.num_feat = num_feat
        self.depth = depth
        self.conv_in = nn.Conv2d(packed + 1, num_feat, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(num_feat, num_feat, 3, padding=1) for _ in range(depth - 2))
        self.conv_out = nn.Conv2d(num_feat, packed, 3, padding=1)
        for conv in (self.conv_in, *self.body):
            # He init keeps activations from shrinking layer by layer in a plain ReLU stack, which
            # torch's default (uniform, a=sqrt(5)) does not.
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        # A zero last conv starts training at the identity, the right answer at sigma 0.
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        if not torch.jit.is_tracing() and (x.shape[-2] % _UNSHUFFLE or x.shape[-1] % _UNSHUFFLE):
            raise ValueError(
                f"FFDNet needs even height and width, got {x.shape[-1]}x{x.shape[-2]}; "
                "pad to the descriptor's size_multiple (2) first"
            )
        feat = F.pixel_unshuffle(x, _UNSHUFFLE)
        # ones_like * level rather than expand(n, 1, h, w): no Python sizes, so a traced graph
        # keeps H and W symbolic.
        noise_map = torch.ones_like(feat[:, :1]) * _noise_level(sigma, feat)
        feat = conv_relu(self.conv_in, torch.cat([feat, noise_map], dim=1))
        for conv in self.body:
            feat = conv_relu(conv, feat)
        return x - F.pixel_shuffle(self.conv_out(feat), _UNSHUFFLE)


def _noise_level(sigma: float | Tensor, like: Tensor) -> Tensor:
    """sigma as an ``N x 1 x 1 x 1`` (or ``1 x 1 x 1 x 1``) tensor of ``like``'s dtype and device,
    or, given as a per-pixel map (``N x 1 x h x w``, any size that ``like``'s divides), as that
    map area-averaged to ``like``'s height and width."""
    if isinstance(sigma, Tensor) and sigma.dim() == 4 and sigma.shape[-2:] != (1, 1):
        return _noise_map(sigma, like)
    if not isinstance(sigma, Tensor):
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        return torch.full((1, 1, 1, 1), float(sigma), dtype=like.dtype, device=like.device)
    if not torch.jit.is_tracing() and sigma.numel() not in (1, like.shape[0]):
        raise ValueError(
            f"sigma has {sigma.numel()} values for a batch of {like.shape[0]}; give one, or one per image"
        )
    return sigma.to(dtype=like.dtype, device=like.device).reshape(-1, 1, 1, 1)


def is_ffdnet(state_dict: Mapping[str, Tensor]) -> bool:
    """Exactly ``conv_in``, ``conv_out`` and ``body.0 .. body.K`` weights and biases, nothing else.

    compact models have only ``body.N`` keys and RRDB models ``conv_first``/``conv_last``, so
    neither is taken for this and this for neither.
    """
    if not _ENDS <= state_dict.keys():
        return False
    indices = set()
    for key in state_dict.keys() - _ENDS:
        m = _BODY_KEY.fullmatch(key)
        if m is None:
            return False
        indices.add(int(m.group(1)))
    return indices == set(range(len(indices))) and all(
        f"body.{i}.{p}" in state_dict for i in indices for p in ("weight", "bias")
    )


def build_ffdnet(state_dict: Mapping[str, Tensor], *, name: str, sha256: str | None) -> LoadedModel:
    """Infer channels, width and depth from tensor shapes, build the module and load the weights."""
    first, last = state_dict["conv_in.weight"], state_dict["conv_out.weight"]
    packed = int(last.shape[0])
    in_ch = packed // (_UNSHUFFLE * _UNSHUFFLE)
    if first.dim() != 4 or last.dim() != 4 or packed % 4 or int(first.shape[1]) != packed + 1:
        raise ModelError(
            f"checkpoint {name} looks like an ffdnet model but conv_in has {int(first.shape[1])} inputs and "
            f"conv_out {packed} outputs, not 4 x channels + 1 and 4 x channels; it cannot be loaded as ffdnet"
        )
    num_feat = int(first.shape[0])
    depth = 2 + sum(1 for k in state_dict if k.startswith("body.") and k.endswith(".weight"))
    module = FFDNet(in_ch, num_feat=num_feat, depth=depth)
    fit_weights(module, state_dict, name=name, architecture="ffdnet")
    descriptor = ModelDescriptor(
        architecture="ffdnet",
        name=name,
        task="denoise",
        scale=1,
        in_channels=in_ch,
        out_channels=in_ch,
        size_multiple=_UNSHUFFLE,
        # depth 3x3 convs on the half-resolution grid reach `depth` grid pixels, each 2 input
        # pixels wide; the farthest input pixel of the outermost grid pixel is one more away.
        receptive_radius=_UNSHUFFLE * depth + _UNSHUFFLE - 1,
        parameters=sum(p.numel() for p in module.parameters()),
        hyperparameters={"num_feat": num_feat, "depth": depth},
        sha256=sha256,
    )
    return LoadedModel(module=module, descriptor=descriptor)


def _noise_map(sigma: Tensor, like: Tensor) -> Tensor:
    h, w = like.shape[-2:]
    if sigma.shape[1] != 1 or sigma.shape[0] not in (1, like.shape[0]):
        raise ValueError(
            f"a noise map must be N x 1 x H x W for a batch of {like.shape[0]}, got {tuple(sigma.shape)}"
        )
    mh, mw = sigma.shape[-2:]
    if mh % h or mw % w:
        raise ValueError(f"a {mw}x{mh} noise map does not shrink evenly to the network's {w}x{h}")
    sigma = sigma.to(dtype=like.dtype, device=like.device)
    return F.avg_pool2d(sigma, (mh // h, mw // w)) if (mh, mw) != (h, w) else sigma
