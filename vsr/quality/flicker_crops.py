"""Flicker crops: one region over consecutive frames, each configuration's output above the truth's.

`FlickerCropPicker` is fed what `FlickerMeter` measures, pair by pair, and keeps the window of
``columns`` consecutive frames and the ``size``-pixel square where the chosen configuration's
warping error exceeds a reference's by the most (summed over the window's pairs and the square's
valid pixels). The reference is the configuration compared with it (``against``: the region where
that one removes the most flicker, the picture of what it does, at its best), or else the
ground truth's own error (the flicker the eye would catch). `crops_mosaic` lays the window out:

    rows: each configuration's output, the ground truth, then for each of them the warping
    error |frame t - frame t-1 warped onto it| (mean over RGB) times `DIFF_GAIN`; columns: frames.

Pixels the metric leaves out (occluded, or their source outside the frame) are drawn in
`EXCLUDED_COLOUR` in the error rows. Every panel is enlarged ``zoom`` times, nearest neighbour.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from vsr.errors import OutputError
from vsr.quality.flicker import PairErrors

__all__ = [
    "CROPS_COLUMNS",
    "DIFF_GAIN",
    "EXCLUDED_COLOUR",
    "CropsLayout",
    "FlickerCropPicker",
    "FlickerWindow",
    "crops_mosaic",
    "write_crops",
]

CROPS_COLUMNS = 4  # consecutive frames shown
CROPS_SIZE = 64  # ground-truth pixels per side
CROPS_ZOOM = 3
DIFF_GAIN = 8.0  # one level of warping error shows as 8 levels of grey
EXCLUDED_COLOUR = (40, 60, 160)  # the error rows' pixels the metric does not count
_GAP = 4
_LABEL_WIDTH = 112
_HEADER = 16


@dataclass(frozen=True)
class CropsLayout:
    """Where each panel of the mosaic sits: ``rows`` x ``columns`` panels of ``panel`` pixels."""

    rows: int
    columns: int
    panel: int  # crop size times zoom

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the whole picture."""
        return (
            _LABEL_WIDTH + self.columns * self.panel + (self.columns - 1) * _GAP,
            _HEADER + self.rows * self.panel + (self.rows - 1) * _GAP,
        )

    def origin(self, row: int, column: int) -> tuple[int, int]:
        """(x, y) of the top-left pixel of a panel."""
        return _LABEL_WIDTH + column * (self.panel + _GAP), _HEADER + row * (self.panel + _GAP)


@dataclass(frozen=True)
class FlickerWindow:
    """The chosen crops: ``images[s][c]`` is stream s's crop in column c (the last stream is the
    ground truth), ``errors[s][c]`` its warping-error map, ``valid[c]`` the pixels scored."""

    frames: tuple[int, ...]
    x: int
    y: int
    size: int
    images: tuple[tuple[NDArray[np.uint8], ...], ...]
    errors: tuple[tuple[NDArray[np.float32], ...], ...]
    valid: tuple[NDArray[np.bool_], ...]


@dataclass(frozen=True)
class _Pair:
    index: int
    images: tuple[NDArray[np.uint8], ...]  # each stream's frame, then the truth's
    errors: PairErrors
    excess: NDArray[np.float64]  # (chosen stream's error - the reference's) on valid pixels, >= 0


class FlickerCropPicker:
    """``update(index, images, errors)`` once per frame pair, ``window()`` at the end.

    ``images`` are the current frame of every stream and then the ground truth's; ``errors`` what
    `FlickerMeter.update` returned for that frame; ``chosen`` the stream whose flicker is shown,
    ``against`` the stream it is compared with (None: the ground truth).
    """

    def __init__(
        self,
        chosen: int = 0,
        against: int | None = None,
        *,
        columns: int = CROPS_COLUMNS,
        size: int = CROPS_SIZE,
    ) -> None:
        if columns < 1 or size < 1:
            raise ValueError(f"crops need at least one column and one pixel, got {columns} and {size}")
        self.chosen, self.against, self.columns, self.size = chosen, against, columns, size
        self._pairs: deque[_Pair] = deque(maxlen=columns)
        self._best: tuple[float, FlickerWindow] | None = None

    def update(self, index: int, images: Sequence[NDArray[np.uint8]], errors: PairErrors) -> None:
        reference = errors.ground_truth if self.against is None else errors.outputs[self.against]
        excess = np.where(errors.valid, errors.outputs[self.chosen] - reference, 0.0)
        self._pairs.append(_Pair(index, tuple(images), errors, np.maximum(excess, 0.0)))
        if len(self._pairs) == self.columns:
            self._consider()

    def window(self) -> FlickerWindow | None:
        """The window that flickers most; a shorter one when the clip had fewer pairs than columns."""
        if self._best is None and self._pairs:
            self._consider()
        return None if self._best is None else self._best[1]

    def _consider(self) -> None:
        pairs = list(self._pairs)
        total = np.sum([p.excess for p in pairs], axis=0)
        h, w = total.shape
        s = min(self.size, h, w)
        integral = np.zeros((h + 1, w + 1))
        integral[1:, 1:] = total.cumsum(axis=0).cumsum(axis=1)
        boxes = integral[s:, s:] - integral[:-s, s:] - integral[s:, :-s] + integral[:-s, :-s]
        y, x = np.unravel_index(int(np.argmax(boxes)), boxes.shape)
        score = float(boxes[y, x])
        if self._best is not None and score <= self._best[0]:
            return
        crop = np.s_[y : y + s, x : x + s]
        streams = len(pairs[0].images)
        window = FlickerWindow(
            frames=tuple(p.index for p in pairs),
            x=int(x),
            y=int(y),
            size=s,
            images=tuple(tuple(p.images[k][crop].copy() for p in pairs) for k in range(streams)),
            errors=tuple(
                tuple(
                    (p.errors.outputs[k] if k < streams - 1 else p.errors.ground_truth)[crop].copy()
                    for p in pairs
                )
                for k in range(streams)
            ),
            valid=tuple(p.errors.valid[crop].copy() for p in pairs),
        )
        self._best = (score, window)


def _error_picture(error: NDArray[np.float32], valid: NDArray[np.bool_]) -> NDArray[np.uint8]:
    grey = np.clip(np.rint(error.astype(np.float64) * DIFF_GAIN), 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgb[~valid] = EXCLUDED_COLOUR
    return rgb


def crops_mosaic(
    window: FlickerWindow, labels: Sequence[str], *, zoom: int = CROPS_ZOOM
) -> tuple[NDArray[np.uint8], CropsLayout]:
    """The picture of ``window`` (``labels``: one per stream, the ground truth's last) and its layout."""
    streams, columns = len(window.images), len(window.frames)
    if len(labels) != streams:
        raise ValueError(f"{streams} streams need {streams} labels, got {len(labels)}")
    layout = CropsLayout(rows=2 * streams, columns=columns, panel=window.size * zoom)
    width, height = layout.size
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, index in enumerate(window.frames):
        draw.text((layout.origin(0, c)[0] + 2, 2), f"frame {index}", fill=(0, 0, 0))
    for k in range(streams):
        row_labels = (labels[k], f"error x{DIFF_GAIN:g}\n{labels[k]}")
        for row, label in ((k, row_labels[0]), (streams + k, row_labels[1])):
            _, y = layout.origin(row, 0)
            draw.multiline_text((4, y + 4), label.replace(", ", "\n"), fill=(0, 0, 0))
            for c in range(columns):
                panel = (
                    window.images[k][c]
                    if row < streams
                    else _error_picture(window.errors[k][c], window.valid[c])
                )
                big = panel.repeat(zoom, axis=0).repeat(zoom, axis=1)
                canvas.paste(Image.fromarray(big), layout.origin(row, c))
    return np.asarray(canvas), layout


def write_crops(
    path: str | os.PathLike[str], window: FlickerWindow, labels: Sequence[str], *, zoom: int = CROPS_ZOOM
) -> Path:
    """Write `crops_mosaic` as a PNG; returns the path."""
    p = Path(path)
    picture, _ = crops_mosaic(window, labels, zoom=zoom)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(p, format="PNG", optimize=True)
    except OSError as exc:
        raise OutputError(f"cannot write flicker crops {p} ({exc.strerror or exc}); check the path") from exc
    return p
