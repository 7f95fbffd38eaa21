"""Narrowing an FFDNet (vsr.train.prune): which channels stay, and the bias fold of the rest."""

from __future__ import annotations

import pytest
import torch

from vsr.models.denoise import FFDNet
from vsr.train.prune import mean_activations, narrow_ffdnet

FEAT, WIDTH, DEPTH = 12, 8, 5


def _with_constant_channels(seed: int) -> tuple[FFDNet, list[list[int]]]:
    """An FFDNet whose channels 0, 3, 6 and 9 of every ReLU layer read nothing: each is a constant
    map, relu(bias), with a large bias so it ranks above the others and is kept, except channel 9,
    whose bias is negative (always 0: it adds nothing and must be dropped)."""
    torch.manual_seed(seed)
    model = FFDNet(num_feat=FEAT, depth=DEPTH)
    torch.nn.init.normal_(model.conv_out.weight, std=0.05)
    with torch.no_grad():
        for conv in (model.conv_in, *model.body):
            conv.weight[[0, 3, 6, 9]] = 0.0
            conv.bias[[0, 3, 6]] = 5.0
            conv.bias[9] = -1.0
    return model.eval(), [[0, 3, 6], [9]]


def test_narrowing_keeps_the_strongest_channels_and_folds_constant_ones_exactly() -> None:
    model, (strong, dead) = _with_constant_channels(0)
    x = torch.rand(2, 3, 32, 32)
    sigma = torch.tensor([0.05, 0.1])
    means = mean_activations(model, x, sigma)
    assert len(means) == DEPTH - 1
    for mean in means:
        assert mean[strong].tolist() == pytest.approx([5.0] * 3)
        assert mean[dead].tolist() == [0.0]
    narrow = narrow_ffdnet(model, means, FEAT - 1)  # drops exactly the dead channel
    assert narrow.num_feat == FEAT - 1 and narrow.depth == DEPTH
    assert torch.allclose(narrow(x, sigma), model(x, sigma), atol=1e-6)


def test_a_dropped_channel_that_is_constant_lands_in_the_next_bias_exactly_away_from_borders() -> None:
    """Channel 9 reads nothing and is a constant 0.01 (bias 0.01), the others have bias 1: it is the
    least important, so dropped, but it adds 0.01 x its weights to the next layer. Folded into the next bias, the narrowed model
    is the original wherever the zero padding is out of reach (depth 5: 11 pixels)."""
    model, _ = _with_constant_channels(1)
    with torch.no_grad():
        for conv in (model.conv_in, *model.body):
            conv.bias[[c for c in range(FEAT) if c not in (0, 3, 6)]] = 1.0
            conv.bias[9] = 0.01
    x = torch.rand(1, 3, 64, 64)
    sigma = torch.tensor([0.1])
    narrow = narrow_ffdnet(model, mean_activations(model, x, sigma), FEAT - 1)
    kept = [c for c in range(FEAT) if c != 9]
    assert torch.equal(narrow.conv_in.weight, model.conv_in.weight[kept])
    inner = (slice(None), slice(None), slice(16, 48), slice(16, 48))
    assert torch.allclose(narrow(x, sigma)[inner], model(x, sigma)[inner], atol=1e-5)
    assert not torch.allclose(narrow(x, sigma), model(x, sigma), atol=1e-5)  # the borders do differ


def test_width_out_of_range_is_refused() -> None:
    model, _ = _with_constant_channels(2)
    means = mean_activations(model, torch.rand(1, 3, 8, 8), torch.tensor([0.1]))
    with pytest.raises(ValueError, match=r"width must be in 1..12"):
        narrow_ffdnet(model, means, 13)
