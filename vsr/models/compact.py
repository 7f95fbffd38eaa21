"""SRVGGNetCompact: Real-ESRGAN's small VGG-style SR network (``realesr-animevideov3`` and kin).

A plain stack of 3x3 convolutions in low-resolution space, a pixel shuffle to the output size, and
the nearest-neighbour upsampled input added back, so the network only learns the residual. The
state-dict layout matches Real-ESRGAN's so its checkpoints load unchanged:
``body.0`` conv, ``body.1`` activation, ``num_conv`` x (conv, activation), last conv.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from vsr.errors import ModelError
from vsr.models._weights import fit_weights
from vsr.models.descriptor import LoadedModel, ModelDescriptor

__all__ = ["ActType", "SRVGGNetCompact", "build_compact", "is_compact", "widen_compact_scale"]

log = logging.getLogger(__name__)

ActType = Literal["prelu", "relu", "leakyrelu"]
_BODY_KEY = re.compile(r"body\.(\d+)\.(weight|bias)")


def _activation(act_type: ActType, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    raise ValueError(f"unknown activation {act_type!r}; expected prelu, relu or leakyrelu")


class SRVGGNetCompact(nn.Module):
    """``N x in_ch x H x W`` in [0, 1] -> ``N x out_ch x sH x sW``; no clamping.

    The residual is added in the promoted dtype of the body output and the input, so under
    autocast with a float32 input the result stays float32 (the cheap add keeps full precision).
    """

    def __init__(
        self,
        in_ch: int = 3,
        out_ch: int = 3,
        *,
        num_feat: int = 64,
        num_conv: int = 16,
        scale: int = 4,
        act_type: ActType = "prelu",
    ) -> None:
        super().__init__()
        if out_ch != in_ch:
            # The residual adds the upsampled input to the output, channel for channel.
            raise ValueError(f"SRVGGNetCompact needs in_ch == out_ch, got {in_ch} and {out_ch}")
        self.in_ch = in_ch
        self.out_ch = out_ch
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(in_ch, num_feat, 3, padding=1), _activation(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, padding=1), _activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, out_ch * scale * scale, 3, padding=1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        base = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return out + base


def is_compact(state_dict: Mapping[str, Tensor]) -> bool:
    """Only ``body.N.weight/bias`` keys, convs at even indices from 0 to an even last index."""
    if not state_dict or "body.0.weight" not in state_dict:
        return False
    indices = set()
    for key in state_dict:
        m = _BODY_KEY.fullmatch(key)
        if m is None:
            return False
        indices.add(int(m.group(1)))
    last = max(indices)
    convs = [state_dict.get(f"body.{i}.weight") for i in range(0, last + 1, 2)]
    return last >= 2 and last % 2 == 0 and all(w is not None and w.dim() == 4 for w in convs)


def _last_index(state_dict: Mapping[str, Tensor]) -> int:
    """Index of the last conv in ``body`` (the one that feeds the pixel shuffle)."""
    return max(int(_BODY_KEY.fullmatch(k).group(1)) for k in state_dict)  # type: ignore[union-attr]


def widen_compact_scale(
    state_dict: Mapping[str, Tensor], *, from_scale: int, to_scale: int
) -> dict[str, Tensor]:
    """A compact model's weights for a larger scale: the start of an x4 run from an x2 model.

    Every layer but the last is the same network in low-resolution space, so it is copied; the
    last conv gets one output per sub-pixel of the larger shuffle, each a copy of the sub-pixel of
    the smaller one that covers it. The result computes exactly the smaller model's output
    enlarged by nearest neighbour (``to_scale / from_scale``), the point training moves on from
    (EDSR starts its x3/x4 models from the x2 one the same way).
    """
    if to_scale % from_scale:
        raise ValueError(f"scale {to_scale} is not a multiple of {from_scale}")
    last = _last_index(state_dict)
    weight, bias = state_dict[f"body.{last}.weight"], state_dict[f"body.{last}.bias"]
    channels = weight.shape[0] // (from_scale * from_scale)
    ratio = to_scale // from_scale
    index = [
        c * from_scale * from_scale + (i // ratio) * from_scale + (j // ratio)
        for c in range(channels)
        for i in range(to_scale)
        for j in range(to_scale)
    ]
    out = dict(state_dict)
    out[f"body.{last}.weight"] = weight[index].clone()
    out[f"body.{last}.bias"] = bias[index].clone()
    return out


def build_compact(state_dict: Mapping[str, Tensor], *, name: str, sha256: str | None) -> LoadedModel:
    """Infer the hyperparameters from tensor shapes, build the module and load the weights."""
    last = _last_index(state_dict)
    first_w = state_dict["body.0.weight"]
    num_feat, in_ch = int(first_w.shape[0]), int(first_w.shape[1])
    num_conv = (last - 2) // 2
    # The residual forces out_ch == in_ch, so the last conv has in_ch * scale^2 outputs.
    shuffle_ch = int(state_dict[f"body.{last}.weight"].shape[0])
    scale = math.isqrt(shuffle_ch // in_ch) if shuffle_ch % in_ch == 0 else 0
    if scale < 1 or scale * scale * in_ch != shuffle_ch:
        raise ModelError(
            f"checkpoint {name} looks like a compact model but its last conv has {shuffle_ch} outputs, "
            f"not {in_ch} x scale^2; it cannot be loaded as compact"
        )
    if "body.1.weight" in state_dict:
        act_type: ActType = "prelu"
    else:
        # ReLU and LeakyReLU leave nothing in the state dict; Real-ESRGAN's own option is "relu".
        act_type = "relu"
        log.warning("%s: compact model without PReLU weights; assuming ReLU activations", name)
    module = SRVGGNetCompact(
        in_ch, in_ch, num_feat=num_feat, num_conv=num_conv, scale=scale, act_type=act_type
    )
    fit_weights(module, state_dict, name=name, architecture="compact")
    descriptor = ModelDescriptor(
        architecture="compact",
        name=name,
        scale=scale,
        in_channels=in_ch,
        out_channels=in_ch,
        size_multiple=1,
        # Each 3x3 conv in low-resolution space widens the dependency by one input pixel.
        receptive_radius=num_conv + 2,
        parameters=sum(p.numel() for p in module.parameters()),
        hyperparameters={"num_feat": num_feat, "num_conv": num_conv, "act_type": act_type},
        sha256=sha256,
    )
    return LoadedModel(module=module, descriptor=descriptor)
