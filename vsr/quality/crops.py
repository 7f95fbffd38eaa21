"""Side-by-side comparison crops: bicubic | model | ground truth, enlarged for the eye."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from vsr.errors import OutputError

__all__ = ["CROP_SIZE", "CROP_ZOOM", "central_crop", "crop_folder", "side_by_side", "write_comparison"]

CROP_SIZE = 64  # ground-truth pixels per side: small enough that single pixels are visible
CROP_ZOOM = 4  # nearest-neighbour enlargement, so the reader sees pixels, not a viewer's smoothing
_GAP = 4  # white pixels between panels


def crop_folder(crops: str | os.PathLike[str] | None) -> Path | None:
    """The folder ``--crops`` names, created if need be (None: no crops asked for)."""
    if crops is None:
        return None
    folder = Path(crops)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create crop folder {folder} ({exc.strerror or exc})") from exc
    return folder


def central_crop(img: NDArray[np.uint8], size: int = CROP_SIZE) -> NDArray[np.uint8]:
    """The central ``size x size`` square (smaller where the image is)."""
    h, w = img.shape[0], img.shape[1]
    ch, cw = min(size, h), min(size, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return img[top : top + ch, left : left + cw]


def side_by_side(
    panels: Sequence[NDArray[np.uint8]], *, size: int = CROP_SIZE, zoom: int = CROP_ZOOM
) -> NDArray[np.uint8]:
    """The same central crop of each same-sized image, enlarged by ``zoom``, in a row."""
    if not panels:
        raise ValueError("side_by_side needs at least one image")
    shapes = {p.shape for p in panels}
    if len(shapes) != 1:
        raise ValueError(f"comparison images differ in shape: {sorted(shapes)}")
    crops = [central_crop(p, size).repeat(zoom, axis=0).repeat(zoom, axis=1) for p in panels]
    h, w = crops[0].shape[:2]
    out = np.full((h, len(crops) * w + (len(crops) - 1) * _GAP, 3), 255, dtype=np.uint8)
    for i, crop in enumerate(crops):
        x = i * (w + _GAP)
        out[:, x : x + w] = crop
    return out


def write_comparison(
    path: str | os.PathLike[str],
    bicubic: NDArray[np.uint8],
    model: NDArray[np.uint8],
    ground_truth: NDArray[np.uint8],
) -> Path:
    """Write bicubic | model | ground truth as a PNG; returns the path."""
    p = Path(path)
    try:
        Image.fromarray(side_by_side([bicubic, model, ground_truth])).save(p, format="PNG")
    except OSError as exc:
        raise OutputError(
            f"cannot write comparison crop {p} ({exc.strerror or exc}); check the folder"
        ) from exc
    return p
