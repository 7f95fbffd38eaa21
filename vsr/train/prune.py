"""Narrowing an FFDNet denoiser: keep each layer's most used channels, fold the rest into a bias.

A start for a cheaper model (``tools/prune_denoiser.py``), which a fine-tuning recipe
(``init_from``) then trains back. Every ReLU layer (``conv_in`` and ``body.N``) keeps the
``width`` channels with the largest importance: the channel's mean activation on sample inputs
times the L2 norm of the next conv's weights that read it (what it adds to the next layer, on
average). A dropped channel's mean activation goes into the next conv's bias, which is exact where
the channel is constant, away from the borders.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vsr.models.denoise import FFDNet

__all__ = ["mean_activations", "narrow_ffdnet"]


@torch.no_grad()
def mean_activations(model: FFDNet, noisy: Tensor, sigma: Tensor) -> list[Tensor]:
    """Per-channel mean of every ReLU output (conv_in's first) over ``noisy``'s images and pixels.

    ``noisy`` is ``N x C x H x W`` in [0, 1] and ``sigma`` its ``N`` noise levels in [0, 1] units.
    """
    feat = F.pixel_unshuffle(noisy, 2)
    noise_map = torch.ones_like(feat[:, :1]) * sigma.to(feat.dtype).view(-1, 1, 1, 1)
    feat = F.relu(model.conv_in(torch.cat([feat, noise_map], dim=1)))
    means = [feat.mean(dim=(0, 2, 3))]
    for conv in model.body:
        feat = F.relu(conv(feat))
        means.append(feat.mean(dim=(0, 2, 3)))
    return means


@torch.no_grad()
def narrow_ffdnet(model: FFDNet, means: list[Tensor], width: int) -> FFDNet:
    """A ``width``-channel copy of ``model`` (same depth), from `mean_activations`'s ``means``."""
    if not 0 < width <= model.num_feat:
        raise ValueError(
            f"width must be in 1..{model.num_feat} for a {model.num_feat}-channel model, got {width}"
        )
    if len(means) != model.depth - 1:
        raise ValueError(f"{len(means)} activation means for {model.depth - 1} ReLU layers")
    convs = [model.conv_in, *model.body, model.conv_out]
    weights = [c.weight.detach().clone() for c in convs]
    biases = [c.bias.detach().clone() for c in convs]
    for layer, mean in enumerate(means):  # layer's outputs feed convs[layer + 1]
        nxt = weights[layer + 1]
        importance = mean * nxt.pow(2).sum(dim=(0, 2, 3)).sqrt()
        keep = torch.sort(torch.topk(importance, width).indices).values
        dropped = torch.ones(mean.numel(), dtype=torch.bool)
        dropped[keep] = False
        biases[layer + 1] += (nxt[:, dropped].sum(dim=(2, 3)) * mean[dropped]).sum(dim=1)
        weights[layer + 1] = nxt[:, keep]
        weights[layer] = weights[layer][keep]
        biases[layer] = biases[layer][keep]
    narrow = FFDNet(model.in_ch, num_feat=width, depth=model.depth)
    for conv, weight, bias in zip(
        [narrow.conv_in, *narrow.body, narrow.conv_out], weights, biases, strict=True
    ):
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return narrow.eval().requires_grad_(False)
