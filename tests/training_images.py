"""Tiny synthetic image folders for the training tests: upsampled noise, seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def smooth_image(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Upsampled noise: detail a network can learn to restore (or keep), unlike white noise."""
    small = rng.integers(0, 256, (size[1] // 6, size[0] // 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def make_training_root(root: Path, *, val_size: tuple[int, int] = (48, 36)) -> Path:
    """``root/train`` (three 60x48 PNGs) and ``root/val`` (two of ``val_size``), from seed 0."""
    rng = np.random.default_rng(0)
    (root / "train").mkdir()
    (root / "val").mkdir()
    for i in range(3):
        smooth_image(rng, (60, 48)).save(root / "train" / f"t{i}.png")
    for i in range(2):
        smooth_image(rng, val_size).save(root / "val" / f"v{i}.png")
    return root
