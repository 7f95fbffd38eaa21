"""The adversarial half of GAN fine-tuning: a spectral-norm U-Net discriminator and its losses.

The discriminator is Real-ESRGAN's ``UNetDiscriminatorSN`` (Wang et al. 2021): three stride-2
convolutions down, three bilinear upsamplings back with skip connections, and a logit for every
pixel. It was chosen over a VGG-style patch discriminator because the generators trained here are
Real-ESRGAN's own SRVGGNetCompact on a realistic degradation, the setting this discriminator was
designed and published for: per-pixel logits tell the generator *where* an output looks fake, which
a patch discriminator's coarse map blurs over, and spectral normalisation keeps it stable without
the batch-norm statistics that small batches make noisy. Its cost is set by ``num_feat``: about
``195 * num_feat**2`` FLOPs per high-resolution pixel (791 kFLOP and 4.4M parameters at
Real-ESRGAN's 64, a quarter of that at 32), several times the compact generator's. On the
project's 2-core CPU a whole gan-x2 step took 16 s at 64 and 3.6 s at 32, so the shipped recipes
(GPU jobs) keep Real-ESRGAN's 64 and the tests use 8.

Losses take raw logits (any shape, any float dtype) and compute in float32:

- ``hinge`` (Miyato et al.): D ``mean(relu(1 - real)) + mean(relu(1 + fake))``, G ``-mean(fake)``.
- ``ragan``, relativistic average (ESRGAN): D asks "is the real more real than the average fake"
  and the reverse; G the same question with the labels swapped. The average is over every logit of
  the batch (all images and positions), since the U-Net gives one per pixel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from vsr.errors import ConfigError

__all__ = [
    "ADVERSARIAL_LOSSES",
    "AdversarialLoss",
    "AdversarialLossName",
    "SpectralNorm",
    "UNetDiscriminatorSN",
    "hinge_d_loss",
    "hinge_g_loss",
    "make_adversarial_loss",
    "ragan_d_loss",
    "ragan_g_loss",
]

AdversarialLossName = Literal["ragan", "hinge"]
_SLOPE = 0.2  # LeakyReLU slope of the Real-ESRGAN discriminator


class SpectralNorm(nn.Module):
    """A weight parametrisation ``W / sigma(W)``, ``sigma`` by one power iteration a training forward.

    Torch's own ``spectral_norm`` would do, but its power iteration calls ``torch.mv``, which CUDA
    autocast lowers to half precision; here it always runs in float32. ``u`` (the estimate of the
    leading left singular vector) is a buffer, so it is in the state dict and a resumed run
    continues from the same estimate.
    """

    def __init__(self, weight: Tensor, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps
        u = torch.randn(weight.shape[0], dtype=torch.float32)
        self.register_buffer("u", F.normalize(u, dim=0, eps=eps))

    def forward(self, weight: Tensor) -> Tensor:
        with torch.autocast(weight.device.type, enabled=False):
            mat = weight.float().flatten(1)
            with torch.no_grad():
                if self.training:
                    v = F.normalize(mat.t() @ self.u, dim=0, eps=self.eps)
                    self.u.copy_(F.normalize(mat @ v, dim=0, eps=self.eps))
                # cloned: a second forward (fake after real) must not change what the first saved
                u = self.u.clone()
                v = F.normalize(mat.t() @ u, dim=0, eps=self.eps)
            sigma = torch.dot(u, mat @ v)
            return (weight.float() / sigma).to(weight.dtype)


def _sn_conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, kernel, stride, 1, bias=False)
    parametrize.register_parametrization(conv, "weight", SpectralNorm(conv.weight.detach()))
    return conv


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral norm: ``N x 3 x H x W`` -> ``N x 1 x H x W`` logits.

    ``H`` and ``W`` must be multiples of 8 (three stride-2 stages).
    """

    def __init__(self, in_channels: int = 3, num_feat: int = 64, *, skip_connection: bool = True) -> None:
        super().__init__()
        f = num_feat
        self.skip_connection = skip_connection
        self.conv0 = nn.Conv2d(in_channels, f, 3, 1, 1)
        self.conv1 = _sn_conv(f, 2 * f, 4, 2)
        self.conv2 = _sn_conv(2 * f, 4 * f, 4, 2)
        self.conv3 = _sn_conv(4 * f, 8 * f, 4, 2)
        self.conv4 = _sn_conv(8 * f, 4 * f, 3, 1)
        self.conv5 = _sn_conv(4 * f, 2 * f, 3, 1)
        self.conv6 = _sn_conv(2 * f, f, 3, 1)
        self.conv7 = _sn_conv(f, f, 3, 1)
        self.conv8 = _sn_conv(f, f, 3, 1)
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"the discriminator needs sides that are multiples of 8, got {tuple(x.shape)}")
        act = _leaky_relu_
        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        y = act(self.conv4(_up(x3)))
        y = y + x2 if self.skip_connection else y
        y = act(self.conv5(_up(y)))
        y = y + x1 if self.skip_connection else y
        y = act(self.conv6(_up(y)))
        y = y + x0 if self.skip_connection else y
        y = act(self.conv7(y))
        y = act(self.conv8(y))
        return self.conv9(y)


def _leaky_relu_(x: Tensor) -> Tensor:
    # In place, as Real-ESRGAN's: a convolution's backward needs its input, not its output, and on
    # a CPU these full-resolution activations cost as much memory traffic as compute.
    return F.leaky_relu(x, _SLOPE, inplace=True)


def _up(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def hinge_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1.0 - real.float()).mean() + F.relu(1.0 + fake.float()).mean()


def hinge_g_loss(real: Tensor, fake: Tensor) -> Tensor:
    """``-mean(fake)``; ``real`` is unused (the signature is the relativistic one's)."""
    del real
    return -fake.float().mean()


def _bce(logits: Tensor, target: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def ragan_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """``(BCE(real - mean(fake), 1) + BCE(fake - mean(real), 0)) / 2``, as ESRGAN halves it."""
    r, f = real.float(), fake.float()
    return 0.5 * (_bce(r - f.mean(), 1.0) + _bce(f - r.mean(), 0.0))


def ragan_g_loss(real: Tensor, fake: Tensor) -> Tensor:
    """The discriminator's loss with the labels swapped; ``real`` should be detached."""
    r, f = real.float(), fake.float()
    return 0.5 * (_bce(r - f.mean(), 0.0) + _bce(f - r.mean(), 1.0))


@dataclass(frozen=True, kw_only=True)
class AdversarialLoss:
    """A discriminator and a generator loss, each of (real logits, fake logits)."""

    discriminator: Callable[[Tensor, Tensor], Tensor]
    generator: Callable[[Tensor, Tensor], Tensor]
    generator_needs_real: bool  # False: the generator's step can skip scoring the real images


ADVERSARIAL_LOSSES: dict[str, AdversarialLoss] = {
    "ragan": AdversarialLoss(discriminator=ragan_d_loss, generator=ragan_g_loss, generator_needs_real=True),
    "hinge": AdversarialLoss(discriminator=hinge_d_loss, generator=hinge_g_loss, generator_needs_real=False),
}


def make_adversarial_loss(name: str) -> AdversarialLoss:
    try:
        return ADVERSARIAL_LOSSES[name]
    except KeyError:
        raise ConfigError(
            f"unknown adversarial loss {name!r}; available: {', '.join(ADVERSARIAL_LOSSES)}"
        ) from None
