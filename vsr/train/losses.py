"""Pixel losses for PSNR-oriented training: L1 and Charbonnier."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from vsr.errors import ConfigError

__all__ = ["LOSSES", "Loss", "charbonnier_loss", "l1_loss", "make_loss"]

Loss = Callable[[Tensor, Tensor], Tensor]

CHARBONNIER_EPS = 1e-3  # in [0, 1] pixel units: about a quarter of one 8-bit level


def l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error; computed in float32 whatever the prediction's dtype."""
    return (pred.float() - target.float()).abs().mean()


def charbonnier_loss(pred: Tensor, target: Tensor, eps: float = CHARBONNIER_EPS) -> Tensor:
    """``mean(sqrt(d^2 + eps^2))``: L1 away from zero, smooth (and with a defined gradient) at it."""
    diff = pred.float() - target.float()
    return torch.sqrt(diff * diff + eps * eps).mean()


LOSSES: dict[str, Loss] = {"l1": l1_loss, "charbonnier": charbonnier_loss}


def make_loss(name: str) -> Loss:
    try:
        return LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}; available: {', '.join(LOSSES)}") from None
