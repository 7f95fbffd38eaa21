"""RRDBNet: the ESRGAN / Real-ESRGAN generator (``RealESRGAN_x4plus`` and its x2 / x1 variants).

Layout (Real-ESRGAN / BasicSR names): ``conv_first``; ``body.{i}`` residual-in-residual dense
blocks of three ``rdb{1,2,3}`` with five convs each; ``conv_body``; per x2 upsampling stage a
nearest-neighbour x2 and ``conv_up{k}``; ``conv_hr``; ``conv_last``. Real-ESRGAN's x2 and x1
models keep the two x4 upsampling stages and pixel-unshuffle the input by 2 or 4 instead.

Two older key formats are converted to this layout: the original ESRGAN ``model.N`` sequential
(``model.1.sub.{i}.RDB{j}.conv{k}.0``) and the ESRGAN repository's ``RRDB_trunk`` names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vsr.errors import ModelError
from vsr.models._weights import fit_weights
from vsr.models.descriptor import LoadedModel, ModelDescriptor

__all__ = ["RRDBNet", "build_rrdb", "is_rrdb", "to_rrdb_layout"]

_RESIDUAL_SCALE = 0.2  # ESRGAN scales every residual branch down so the deep stack trains stably


class _ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        # conv{k} sees the block input and every earlier conv's output (dense connections).
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, padding=1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, padding=1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, padding=1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(F.leaky_relu(conv(torch.cat(feats, dim=1)), 0.2))
        return self.conv5(torch.cat(feats, dim=1)) * _RESIDUAL_SCALE + x


class _RRDB(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = _ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = _ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = _ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * _RESIDUAL_SCALE + x


class RRDBNet(nn.Module):
    """``N x in_ch x H x W`` in [0, 1] -> ``N x out_ch x sH x sW``; no clamping.

    ``num_upsample`` x2 stages follow the body (default 2, or log2(scale) above x4); when
    ``2**num_upsample`` exceeds ``scale`` the input is pixel-unshuffled by the ratio first, so H
    and W must be multiples of it (``size_multiple``).
    """

    def __init__(
        self,
        in_ch: int = 3,
        out_ch: int = 3,
        *,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        num_upsample: int | None = None,
    ) -> None:
        super().__init__()
        if num_upsample is None:
            num_upsample = max(2, (scale - 1).bit_length())
        up = 2**num_upsample
        if scale < 1 or up % scale != 0:
            raise ValueError(f"RRDBNet cannot reach scale {scale} with {num_upsample} x2 upsampling stages")
        self.scale = scale
        self.unshuffle = up // scale
        self.num_upsample = num_upsample
        self.conv_first = nn.Conv2d(in_ch * self.unshuffle**2, num_feat, 3, padding=1)
        self.body = nn.Sequential(*(_RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        # Registered by name (conv_up1, conv_up2, ...) so the state dict matches Real-ESRGAN's.
        for k in range(1, num_upsample + 1):
            self.add_module(f"conv_up{k}", nn.Conv2d(num_feat, num_feat, 3, padding=1))
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv_last = nn.Conv2d(num_feat, out_ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        feat = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        for k in range(1, self.num_upsample + 1):
            conv = getattr(self, f"conv_up{k}")
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


_OLD_RDB = re.compile(r"model\.1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0\.(weight|bias)")
_OLD_TOP = re.compile(r"model\.(\d+)\.(weight|bias)")
_OLD_TRUNK_END = re.compile(r"model\.1\.sub\.(\d+)\.(weight|bias)")
_ESRGAN_RDB = re.compile(r"RRDB_trunk\.(\d+)\.RDB([123])\.conv([1-5])\.(weight|bias)")
_ESRGAN_NAMES = {
    "trunk_conv": "conv_body",
    "HRconv": "conv_hr",
    "upconv1": "conv_up1",
    "upconv2": "conv_up2",
    "upconv3": "conv_up3",
}


def _from_old_esrgan(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    top = sorted({int(m.group(1)) for k in sd if (m := _OLD_TOP.fullmatch(k))})
    # The sequential is conv_first (0), the trunk (1), per upsampling stage an Upsample, conv and
    # activation, then HR conv, activation, last conv; only convs have tensors, so the number of
    # upsampling stages is the number of top-level convs after the trunk minus the final two.
    tail = [i for i in top if i >= 2]
    names = {0: "conv_first"}
    if len(tail) >= 2:
        names |= {i: f"conv_up{n}" for n, i in enumerate(tail[:-2], start=1)}
        names |= {tail[-2]: "conv_hr", tail[-1]: "conv_last"}
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        if m := _OLD_RDB.fullmatch(key):
            out[f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"] = value
        elif m := _OLD_TRUNK_END.fullmatch(key):
            out[f"conv_body.{m.group(2)}"] = value  # the conv closing the trunk, after the last RRDB
        elif (m := _OLD_TOP.fullmatch(key)) and int(m.group(1)) in names:
            out[f"{names[int(m.group(1))]}.{m.group(2)}"] = value
        else:
            out[key] = value  # left as is: the strict load names it if it does not belong
    return out


def _from_esrgan_repo(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        prefix, _, param = key.rpartition(".")
        if m := _ESRGAN_RDB.fullmatch(key):
            out[f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"] = value
        elif prefix in _ESRGAN_NAMES:
            out[f"{_ESRGAN_NAMES[prefix]}.{param}"] = value
        else:
            out[key] = value
    return out


def to_rrdb_layout(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename old ESRGAN keys to the Real-ESRGAN layout; other state dicts come back unchanged."""
    if "model.0.weight" in state_dict and "model.1.sub.0.RDB1.conv1.0.weight" in state_dict:
        return _from_old_esrgan(state_dict)
    if "RRDB_trunk.0.RDB1.conv1.weight" in state_dict:
        return _from_esrgan_repo(state_dict)
    return dict(state_dict)


_REQUIRED = (
    "conv_first.weight",
    "body.0.rdb1.conv1.weight",
    "conv_body.weight",
    "conv_hr.weight",
    "conv_last.weight",
)


def is_rrdb(state_dict: Mapping[str, Tensor]) -> bool:
    sd = to_rrdb_layout(state_dict)
    return all(k in sd for k in _REQUIRED)


def _count(sd: Mapping[str, Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.fullmatch(k))})


def build_rrdb(state_dict: Mapping[str, Tensor], *, name: str, sha256: str | None) -> LoadedModel:
    """Infer the hyperparameters from tensor shapes, build the module and load the weights."""
    sd = to_rrdb_layout(state_dict)
    first = sd["conv_first.weight"]
    num_feat = int(first.shape[0])
    num_grow_ch = int(sd["body.0.rdb1.conv1.weight"].shape[0])
    num_block = _count(sd, r"body\.(\d+)\.rdb1\.conv1\.weight")
    num_upsample = _count(sd, r"conv_up(\d+)\.weight")
    out_ch = int(sd["conv_last.weight"].shape[0])
    # Only conv_first sees the unshuffled input: in_ch * u^2 channels. Assume in_ch == out_ch
    # (true of every released model) and solve for the unshuffle factor u.
    packed = int(first.shape[1])
    unshuffle = next((u for u in (1, 2, 4, 8) if out_ch * u * u == packed), 0)
    up = 2**num_upsample
    if unshuffle == 0 or up % unshuffle != 0:
        raise ModelError(
            f"checkpoint {name} looks like an RRDB model but conv_first has {packed} inputs for {out_ch} "
            f"output channels and {num_upsample} upsampling stages; this variant is not supported"
        )
    scale = up // unshuffle
    module = RRDBNet(
        out_ch,
        out_ch,
        scale=scale,
        num_feat=num_feat,
        num_block=num_block,
        num_grow_ch=num_grow_ch,
        num_upsample=num_upsample,
    )
    fit_weights(module, sd, name=name, architecture="rrdb")
    # Deepest path of 3x3 convs in the (unshuffled) feature grid: conv_first, 15 per RRDB (3 RDBs
    # of 5 convs), conv_body, then each later conv adds at most one feature pixel even though it
    # runs at a finer grid. One feature pixel spans `unshuffle` input pixels. This bound is strict;
    # the 0.2 residual scaling makes far contributions tiny, but not zero.
    feature_radius = 2 + 15 * num_block + num_upsample + 2
    descriptor = ModelDescriptor(
        architecture="rrdb",
        name=name,
        scale=scale,
        in_channels=out_ch,
        out_channels=out_ch,
        size_multiple=unshuffle,
        receptive_radius=feature_radius * unshuffle + unshuffle - 1,
        parameters=sum(p.numel() for p in module.parameters()),
        hyperparameters={
            "num_feat": num_feat,
            "num_block": num_block,
            "num_grow_ch": num_grow_ch,
            "num_upsample": num_upsample,
            "unshuffle": unshuffle,
        },
        sha256=sha256,
    )
    return LoadedModel(module=module, descriptor=descriptor)
