"""Pixel-side losses: L1, Charbonnier and MSE (PSNR training), and image-gradient and SSIM terms (GAN).

Every loss computes in float32 whatever the prediction's dtype, with autocast off, so a bf16
forward never lowers the precision of the quantity being minimised.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from vsr.errors import ConfigError
from vsr.quality.sharpness import PHASE_BLOCK

__all__ = [
    "LOSSES",
    "Loss",
    "charbonnier_loss",
    "gradient_loss",
    "l1_loss",
    "make_loss",
    "mse_loss",
    "mse_y_loss",
    "phase_loss",
    "ssim",
    "ssim_loss",
]

Loss = Callable[[Tensor, Tensor], Tensor]

CHARBONNIER_EPS = 1e-3  # in [0, 1] pixel units: about a quarter of one 8-bit level
# Wang et al.'s SSIM constants, as `vsr.quality.ssim` uses them, for images in [0, 1] (L = 1).
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
_SSIM_C1 = 0.01**2
_SSIM_C2 = 0.03**2


def l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error; computed in float32 whatever the prediction's dtype."""
    return (pred.float() - target.float()).abs().mean()


def charbonnier_loss(pred: Tensor, target: Tensor, eps: float = CHARBONNIER_EPS) -> Tensor:
    """``mean(sqrt(d^2 + eps^2))``: L1 away from zero, smooth (and with a defined gradient) at it."""
    diff = pred.float() - target.float()
    return torch.sqrt(diff * diff + eps * eps).mean()


def mse_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over R, G and B: what RGB PSNR measures."""
    diff = pred.float() - target.float()
    return (diff * diff).mean()


# BT.601 studio-swing YCbCr from RGB in [0, 1], as `vsr.quality` scores (MATLAB's rgb2ycbcr / 255);
# the offsets cancel in a difference, so only the matrix is needed.
_YCBCR = (
    torch.tensor(
        [
            [65.481, 128.553, 24.966],
            [-37.797, -74.203, 112.0],
            [112.0, -93.786, -18.214],
        ]
    )
    / 255.0
)
MSE_Y_CHROMA_WEIGHT = 0.1


def mse_y_loss(pred: Tensor, target: Tensor) -> Tensor:
    """MSE of the BT.601 Y channel (what the SR papers' PSNR-Y measures) plus 0.1 x that of Cb, Cr.

    The small chroma term keeps colour anchored: with Y alone, the two directions of RGB space
    that do not change Y would be free to drift.
    """
    diff = pred.float() - target.float()
    m = _YCBCR.to(diff.device)
    ycc = torch.einsum("ij,njhw->nihw", m, diff)
    sq = (ycc * ycc).mean(dim=(0, 2, 3))
    return sq[0] + MSE_Y_CHROMA_WEIGHT * (sq[1] + sq[2])


def gradient_loss(pred: Tensor, target: Tensor) -> Tensor:
    """L1 between the images' horizontal and vertical forward differences (their edges).

    A pixel loss is satisfied by the blurred mean of the plausible answers; matching the
    differences as well asks for edges of the right strength and position.
    """
    p, t = pred.float(), target.float()
    dx = (p[..., :, 1:] - p[..., :, :-1]) - (t[..., :, 1:] - t[..., :, :-1])
    dy = (p[..., 1:, :] - p[..., :-1, :]) - (t[..., 1:, :] - t[..., :-1, :])
    return 0.5 * (dx.abs().mean() + dy.abs().mean())


def phase_loss(pred: Tensor, target: Tensor, scale: int, block: int = PHASE_BLOCK) -> Tensor:
    """The sub-pixel grid in ``pred - target``: the training form of `vsr.quality.phase_pattern`.

    A pixel-shuffle network computes each of the ``scale x scale`` positions of an output cell
    with its own channels; GAN training can let them drift apart into a grid with the scale's
    period that neither the pixel loss (it is a small share of it) nor a young discriminator
    punishes. In each ``block``-pixel block of the residual (every channel): its mean at each
    sub-pixel phase less the block's mean; the mean absolute value of those. It is 0 for a
    perfect output and for any residual that is the same at every phase (a blur, a shift of
    level), so it pulls only towards the truth.
    """
    if scale < 2 or block % scale:
        raise ValueError(f"the block ({block}) must be a multiple of the scale ({scale}), scale >= 2")
    n, c, h, w = pred.shape
    rows, cols = h // block, w // block
    if rows == 0 or cols == 0:
        raise ValueError(f"a {h}x{w} patch holds no {block}x{block} block")
    r = (pred.float() - target.float())[..., : rows * block, : cols * block]
    cells = block // scale
    phases = r.reshape(n, c, rows, cells, scale, cols, cells, scale).mean(dim=(3, 6))
    centred = phases - phases.mean(dim=(3, 5), keepdim=True)
    return centred.abs().mean()


def _gaussian_window(device: torch.device) -> Tensor:
    r = torch.arange(SSIM_WINDOW, dtype=torch.float32, device=device) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(r * r) / (2.0 * SSIM_SIGMA**2))
    return g / g.sum()


def _blur(x: Tensor, g: Tensor) -> Tensor:
    # The 2-D Gaussian is separable: rows then columns, 'valid' like ssim_index.m.
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Mean SSIM of ``N x C x H x W`` images in [0, 1], every channel alike; differentiable.

    The computation of `vsr.quality.ssim` (11x11 Gaussian window, sigma 1.5, valid filtering,
    mean of the map over positions, channels and images), in float32 torch.
    """
    if pred.dim() != 4 or min(pred.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs N x C x H x W images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(pred.shape)}"
        )
    with torch.autocast(pred.device.type, enabled=False):
        x, y = pred.float(), target.float()
        g = _gaussian_window(x.device)
        mu_x, mu_y = _blur(x, g), _blur(y, g)
        var_x = _blur(x * x, g) - mu_x * mu_x
        var_y = _blur(y * y, g) - mu_y * mu_y
        cov = _blur(x * y, g) - mu_x * mu_y
        num = (2 * mu_x * mu_y + _SSIM_C1) * (2 * cov + _SSIM_C2)
        den = (mu_x * mu_x + mu_y * mu_y + _SSIM_C1) * (var_x + var_y + _SSIM_C2)
        return (num / den).mean()


def ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``1 - ssim``: 0 for identical images."""
    return 1.0 - ssim(pred, target)


LOSSES: dict[str, Loss] = {
    "l1": l1_loss,
    "charbonnier": charbonnier_loss,
    "mse": mse_loss,
    "mse-y": mse_y_loss,
}


def make_loss(name: str) -> Loss:
    try:
        return LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}; available: {', '.join(LOSSES)}") from None
