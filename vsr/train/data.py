"""Training pairs: random high-resolution patches from image folders, augmented and degraded.

Images are decoded once and kept in memory as uint8. JPEG photographs carry block and ringing
artefacts at full size that a model would learn to reproduce as "detail", so each JPEG is shrunk
once (antialiased) before patches are cut; lossless images (PNG, TIFF) are kept as they are.

A batch is a pure function of ``(seed, step)``: each patch draws from its own generator seeded
with ``(seed, index)``. Resuming a run therefore needs no data-loader state, and batches could be
made in worker processes in any order with the same result.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from vsr.errors import InputError
from vsr.train.degradations import Degradation

__all__ = [
    "AUGMENTATIONS",
    "TRAIN_SUFFIXES",
    "PatchDataset",
    "PatchSampler",
    "dihedral",
    "find_training_images",
    "load_image_bank",
]

log = logging.getLogger(__name__)

TRAIN_SUFFIXES = frozenset({".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp"})
_LOSSY_FORMATS = frozenset({"JPEG", "WEBP"})
AUGMENTATIONS = 8  # the dihedral group of the square: 4 rotations x optional mirror
_DEGRADE_STREAM = 0x5EED  # keeps the degradation's generator apart from the patch generators


def dihedral(img: NDArray[np.generic], code: int) -> NDArray[np.generic]:
    """One of the 8 flips/90° rotations of an ``H x W (x C)`` array; ``code`` 0 is the identity.

    Bit 0 flips horizontally, bit 1 vertically, bit 2 transposes (applied last); the 8 codes give
    the 8 distinct symmetries of a square, rotations by 90° being a transpose and a flip.
    """
    if not 0 <= code < AUGMENTATIONS:
        raise ValueError(f"augmentation code must be 0..7, got {code}")
    out = img
    if code & 1:
        out = out[:, ::-1]
    if code & 2:
        out = out[::-1]
    if code & 4:
        out = out.swapaxes(0, 1)
    return out


def find_training_images(folders: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image files under each folder (recursively), sorted so the order, and thus the run, is fixed."""
    found: list[Path] = []
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise InputError(f"training folder {root} does not exist; check the recipe's [data] paths")
        found += sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TRAIN_SUFFIXES)
    if not found:
        raise InputError(f"no training images in {', '.join(map(str, folders))}")
    return found


def _shrink(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    # Pillow's bicubic widens its kernel by the reduction factor (antialiasing, as MATLAB's imresize
    # does); it is used here rather than vsr.ops.resize because it is much faster on 2560x1600 photos.
    return im.resize(size, Image.Resampling.BICUBIC)


def _load_one(path: Path, *, lossy_downscale: int, max_side: int) -> NDArray[np.uint8]:
    try:
        with Image.open(path) as im:
            lossy = im.format in _LOSSY_FORMATS
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read training image {path} ({exc}); remove it or convert it") from exc
    w, h = rgb.size
    if lossy and lossy_downscale > 1:
        w, h = max(1, round(w / lossy_downscale)), max(1, round(h / lossy_downscale))
    if max_side and max(w, h) > max_side:
        factor = max_side / max(w, h)
        w, h = max(1, round(w * factor)), max(1, round(h * factor))
    if (w, h) != rgb.size:
        rgb = _shrink(rgb, (w, h))
    array = np.asarray(rgb, dtype=np.uint8).copy()
    array.flags.writeable = False  # shared by every patch cut from it
    return array


def load_image_bank(
    folders: Sequence[str | os.PathLike[str]],
    *,
    lossy_downscale: int = 2,
    max_side: int = 0,
    min_side: int = 1,
) -> list[NDArray[np.uint8]]:
    """Every training image as read-only uint8 ``H x W x 3``, JPEGs shrunk by ``lossy_downscale``.

    Images with a side below ``min_side`` (smaller than a patch) are skipped with a warning.
    """
    bank = []
    for path in find_training_images(folders):
        img = _load_one(path, lossy_downscale=lossy_downscale, max_side=max_side)
        if min(img.shape[:2]) < min_side:
            log.warning(
                "skipping %s: %dx%d is smaller than a %d-pixel patch",
                path,
                img.shape[1],
                img.shape[0],
                min_side,
            )
            continue
        bank.append(img)
    if not bank:
        raise InputError(f"every training image is smaller than a {min_side}-pixel patch")
    log.info("training images: %d, %.0f MB in memory", len(bank), sum(a.nbytes for a in bank) / 1e6)
    return bank


class PatchSampler:
    """Random ground-truth patches (crop, flip, 90° rotation), seeded; subclasses make the inputs."""

    def __init__(
        self,
        images: Sequence[NDArray[np.uint8]],
        *,
        patch_size: int,
        batch_size: int,
        seed: int,
    ) -> None:
        small = [i for i, img in enumerate(images) if min(img.shape[:2]) < patch_size]
        if small:
            raise ValueError(f"images {small} are smaller than the {patch_size}-pixel patch")
        if not images:
            raise ValueError("a patch dataset needs at least one image")
        self.images = list(images)
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.seed = seed
        # Large images hold more distinct patches: draw an image with probability ~ its area, so
        # a 2560x1600 photograph is not seen as often as a 500x500 one per pixel.
        areas = np.array([img.shape[0] * img.shape[1] for img in self.images], dtype=np.float64)
        self._weights = areas / areas.sum()

    def hr_patch(self, index: int) -> NDArray[np.uint8]:
        """Patch number ``index`` of the run: ``patch x patch x 3`` uint8, augmented."""
        rng = np.random.default_rng((self.seed, index))
        img = self.images[int(rng.choice(len(self.images), p=self._weights))]
        p = self.patch_size
        top = int(rng.integers(0, img.shape[0] - p + 1))
        left = int(rng.integers(0, img.shape[1] - p + 1))
        code = int(rng.integers(0, AUGMENTATIONS))
        return np.ascontiguousarray(dihedral(img[top : top + p, left : left + p], code))

    def hr_batch(self, step: int) -> Tensor:
        """The ground-truth patches of a training step: uint8 ``N x 3 x patch x patch``."""
        first = step * self.batch_size
        patches = np.stack([self.hr_patch(first + i) for i in range(self.batch_size)])
        return torch.from_numpy(patches).permute(0, 3, 1, 2).contiguous()

    def degradation_rng(self, step: int) -> np.random.Generator:
        """The generator a step's degradation draws from, apart from the patch generators."""
        return np.random.default_rng((self.seed, _DEGRADE_STREAM, step))


class PatchDataset(PatchSampler):
    """Random HR patches (crop, flip, 90° rotation) and their degraded LR inputs, seeded."""

    def __init__(
        self,
        images: Sequence[NDArray[np.uint8]],
        *,
        patch_size: int,
        batch_size: int,
        degradation: Degradation,
        seed: int,
    ) -> None:
        if patch_size % degradation.scale:
            raise ValueError(f"patch size {patch_size} is not a multiple of scale {degradation.scale}")
        super().__init__(images, patch_size=patch_size, batch_size=batch_size, seed=seed)
        self.degradation = degradation

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        """``(lr, hr)`` for a training step: float32 ``N x 3 x h x w`` in [0, 1], on the CPU."""
        hr = self.hr_batch(step)
        lr = self.degradation(hr, self.degradation_rng(step))
        return lr, hr.to(torch.float32) / 255.0
