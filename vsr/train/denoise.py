"""Training denoisers (recipe ``task = "denoise"``): noisy patches with their noise level, and validation.

The noise follows the evaluation protocol (`vsr.quality.denoising`): white Gaussian noise added
in floating point to every channel, the noisy patch neither clipped nor rounded to 8 bits, so a
model is trained on the kind of input it is scored on. Each patch draws its own sigma, uniformly
in [0, 75] on the 0..255 scale (FFDNet's training range), and the model is told it: one network
covers every level, and the pipeline's pre-pass sets the strength it wants.

Validation scores the EMA weights with `vsr eval --noise 25`'s code and noise: mean RGB PSNR,
no border cut, so the training log's number is the one the exported weights get.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from vsr.errors import ConfigError
from vsr.models import LoadedModel, ModelDescriptor
from vsr.quality import ModelDenoiser, add_gaussian_noise, find_images, load_image, psnr
from vsr.train.data import PatchSampler

__all__ = [
    "NOISE_MODELS",
    "NOISE_SIGMA_MAX",
    "VALIDATION_SIGMA",
    "CompressedNoise",
    "DenoiseValidationSet",
    "GaussianNoise",
    "NoisyPatchDataset",
    "make_noise",
]

NOISE_SIGMA_MAX = 75.0  # 0..255 scale
VALIDATION_SIGMA = 25.0  # the level the colour-denoising tables lead with


class GaussianNoise:
    """``clean`` float32 ``N x C x H x W`` in [0, 1] -> ``(noisy, sigma)``, sigma per image in [0, 1] units.

    ``rng`` is the only source of randomness, so a batch is a pure function of seed and step.
    """

    def __init__(self, *, sigma_max: float = NOISE_SIGMA_MAX) -> None:
        if not 0.0 < sigma_max <= 255.0:
            raise ValueError(f"sigma_max must be in (0, 255], got {sigma_max}")
        self.sigma_max = sigma_max

    def __call__(self, clean: Tensor, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        if clean.dtype != torch.float32 or clean.dim() != 4:
            raise ValueError(
                f"gaussian noise needs float32 N x C x H x W, got {clean.dtype} {tuple(clean.shape)}"
            )
        sigma = (rng.uniform(0.0, self.sigma_max, size=clean.shape[0]) / 255.0).astype(np.float32)
        noise = rng.standard_normal(tuple(clean.shape), dtype=np.float32) * sigma[:, None, None, None]
        return clean + torch.from_numpy(noise), torch.from_numpy(sigma)


class CompressedNoise:
    """Camera-like noise: Gaussian noise, rounded to 8 bits, then (mostly) an H.264 round trip.

    Each patch draws sigma uniformly in [0, ``sigma_max``] (0..255 scale), is rounded to uint8,
    and with probability ``h264_prob`` goes through libx264 at a CRF drawn from ``crf`` as the last
    of three frames of a slow pan (`vsr.train.realistic`: its artefacts are those of a predicted
    frame). What the model is told is what the pipeline's ``--denoise auto`` measures on the frame
    it gets, `vsr.ops.noise.estimate_noise_sigma` of the degraded patch, not the sigma that was
    added: compression removes part of the noise and adds its own, and the network learns what a
    measured level means on such input.
    """

    def __init__(
        self, *, sigma_max: float = 50.0, h264_prob: float = 0.85, crf: tuple[int, int] = (20, 42)
    ) -> None:
        self.sigma_max = sigma_max
        self.h264_prob = h264_prob
        self.crf = crf

    def __call__(self, clean: Tensor, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        from vsr.ops.noise import estimate_noise_sigma
        from vsr.train.realistic import _h264, _moving_frames

        if clean.dtype != torch.float32 or clean.dim() != 4:
            raise ValueError(
                f"compressed noise needs float32 N x C x H x W, got {clean.dtype} {tuple(clean.shape)}"
            )
        images = clean.permute(0, 2, 3, 1).numpy() * 255.0
        out = np.empty(images.shape, dtype=np.uint8)
        for k, img in enumerate(images):
            sigma = rng.uniform(0.0, self.sigma_max)
            noisy = img + rng.standard_normal(img.shape, dtype=np.float32) * sigma
            patch = np.floor(np.clip(noisy, 0.0, 255.0) + 0.5).astype(np.uint8)
            if rng.random() < self.h264_prob:
                crf = int(rng.integers(self.crf[0], self.crf[1] + 1))
                patch = _h264(_moving_frames(patch, 3, 1.5, rng), crf=crf, preset="veryfast")
            out[k] = patch
        noisy = torch.from_numpy(out).permute(0, 3, 1, 2).to(torch.float32).div_(255.0).contiguous()
        return noisy, estimate_noise_sigma(noisy).to(torch.float32)


NOISE_MODELS: dict[str, Callable[[], GaussianNoise | CompressedNoise]] = {
    "gaussian-noise": GaussianNoise,
    "compressed-noise": CompressedNoise,
}


def make_noise(name: str) -> GaussianNoise | CompressedNoise:
    try:
        return NOISE_MODELS[name]()
    except KeyError:
        raise ConfigError(f"unknown noise model {name!r}; available: {', '.join(NOISE_MODELS)}") from None


class NoisyPatchDataset(PatchSampler):
    """Random clean patches (crop, flip, 90° rotation) and their noisy inputs, seeded."""

    def __init__(
        self,
        images: Sequence[NDArray[np.uint8]],
        *,
        patch_size: int,
        batch_size: int,
        noise: GaussianNoise | CompressedNoise,
        seed: int,
    ) -> None:
        super().__init__(images, patch_size=patch_size, batch_size=batch_size, seed=seed)
        self.noise = noise

    def batch(self, step: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(noisy, clean, sigma)``: float32 ``N x 3 x p x p`` (noisy unclipped), and ``N`` sigmas in [0, 1]."""
        clean = self.hr_batch(step).to(torch.float32) / 255.0
        noisy, sigma = self.noise(clean, self.degradation_rng(step))
        return noisy, clean, sigma


class DenoiseValidationSet:
    """An eval folder with the fixed-seed noise of `vsr eval --noise`, made once for repeated scoring."""

    def __init__(self, folder: str | os.PathLike[str], sigma: float = VALIDATION_SIGMA) -> None:
        self.folder = str(folder)
        self.sigma = sigma
        cleans = [load_image(path) for path in find_images(folder)]
        self._pairs = tuple(
            (add_gaussian_noise(clean, sigma, index=i), clean) for i, clean in enumerate(cleans)
        )

    def __len__(self) -> int:
        return len(self._pairs)

    def psnr_rgb(self, module: nn.Module, descriptor: ModelDescriptor, *, device: str) -> float:
        """Mean RGB PSNR (dB, no border cut) of ``module`` on the folder at ``sigma``, in float32."""
        # ModelDenoiser copies the module, so the caller's (EMA) weights are never touched.
        denoise = ModelDenoiser(LoadedModel(module=module, descriptor=descriptor), device=device)
        scores = [psnr(denoise(noisy, self.sigma), clean) for noisy, clean in self._pairs]
        return math.fsum(scores) / len(scores)
