"""Noise level of an image from the image alone: Donoho's wavelet estimator, batched, on any device.

Donoho and Johnstone ("Ideal spatial adaptation by wavelet shrinkage", 1994): the finest diagonal
(HH) coefficients of an orthonormal Haar transform are almost all noise in a natural image, and the
median of their magnitudes, divided by 0.6745 (the median of |N(0, 1)|), estimates the noise
standard deviation while ignoring the few large coefficients that edges and texture make.

Measured per RGB channel and averaged, because the noise level a denoiser is told (FFDNet's sigma,
`vsr.models.denoise`) is the standard deviation of the noise in each RGB channel. The Y channel's
noise is not that number: white noise of sigma in each of R, G and B is 0.67 sigma in BT.601 Y.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["MAD_TO_SIGMA", "estimate_noise_sigma"]

MAD_TO_SIGMA = 1.0 / 0.6744897501960817  # 1 / (the 0.75 quantile of N(0, 1))


def estimate_noise_sigma(images: Tensor) -> Tensor:
    """``N x C x H x W`` images -> ``N`` noise standard deviations, in the images' units.

    ``(a - b - c + d) / 2`` over each 2x2 block is the orthonormal Haar HH coefficient; an odd last
    row or column is dropped. Texture biases the estimate upwards a little (a few tenths of a level
    on 0..255 for photographs), which matters only for nearly clean images.
    """
    if images.dim() != 4 or images.shape[-2] < 2 or images.shape[-1] < 2:
        raise ValueError(
            f"noise estimation needs N x C x H x W images of at least 2x2, got {tuple(images.shape)}"
        )
    h, w = images.shape[-2] // 2 * 2, images.shape[-1] // 2 * 2
    x = images[..., :h, :w].float()
    hh = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) * 0.5
    mad = hh.abs().flatten(2).median(dim=2).values  # N x C
    return (mad * MAD_TO_SIGMA).mean(dim=1)
