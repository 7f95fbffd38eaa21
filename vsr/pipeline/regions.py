"""Changed-region reuse: restore only the tiles of a frame that changed, keep the rest of the output.

A fixed camera's frame is rarely still as a whole (someone walks through it), but most of it is.
A convolutional model's output pixel depends only on the input within its receptive radius ``r``
(`ModelDescriptor.receptive_radius`), so the output of a tile whose surroundings did not change
is the output it had: only tiles within ``r`` of a change need the model, each from a window of
``TILE + 2r`` input pixels (the same arithmetic as `vsr.ops.tiling.run_tiled`, whose output equals
the whole image's).

Per frame, against a *reference* (per block, the input the current output was made from):

- the change map: the largest |difference| of 4x4 block means over the RGB channels, per 8x8 block;
  a block changed when it is over ``threshold``;
- the tiles (``TILE`` pixels a side) within ``r`` of a changed block are recomputed, each from a
  window moved inside the (padded) frame at its borders, so that every window has one size and the
  windows stack into batches of ``WINDOW_BATCH``;
- when the windows would cost more than the whole frame, the whole frame runs instead. Cost is
  first counted in pixels (the windows' more than ``max_cost`` of the frame's); once the stage has
  timed both kinds of model call (`observe`), in seconds: windows must take at most
  ``TIME_COST`` of a whole frame's time. Small convolutions and a compiled whole-frame build change
  which is cheaper (on vtest.avi, compiled, windows cost more than their pixels said), so the
  pixel rule is tried again every ``_PROBE_EVERY`` frames to keep the timings fresh;
- a frame with no changed block keeps the whole previous output (a plan with no windows). Exact
  duplicates never get here: `StillFrames`, whose stricter measure sees every frame first, reuses
  them.

After a frame, its changed blocks become the reference; unchanged blocks keep theirs, so a slow
drift adds up against the reference and ends the reuse instead of freezing the picture.

Why 4x4 means and 6 levels: a camera's noise and compression make 2x2 means of consecutive vtest.avi
frames differ by 2 levels at the 90th percentile, so the strict still-frame measure finds every
tile changed; 4x4 means halve that noise while a real change (a person, a car) moves them by tens
of levels. A single pixel must change by more than 96 levels to be seen alone; docs/BENCHMARKS.md
has what this costs in PSNR against running every frame.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vsr.models.descriptor import ModelDescriptor
from vsr.ops.tiling import pad_to_multiple, window_start

__all__ = [
    "REGION_COST",
    "REGION_THRESHOLD",
    "TILE",
    "TIME_COST",
    "WINDOW_BATCH",
    "ChangedRegions",
    "RegionPlan",
    "paste_tiles",
    "regions_for",
]

TILE = 32  # input pixels a recomputed tile owns, per side
_BLOCK = 8  # change-map granularity, input pixels
_MEAN = 4  # the block means the change map compares
REGION_THRESHOLD = 6.0 / 255
# the windows' share of the frame's pixels above which the whole frame runs: the windows' context
# (2r more a side) is paid again in each window, and small convolutions use the cores less well
REGION_COST = 0.5
WINDOW_BATCH = 8  # windows per model call
TIME_COST = 0.8  # windows must take at most this share of a whole frame's measured time
_PROBE_EVERY = 50  # frames between decisions by pixels, once the times decide
_EWMA = 0.2  # weight of the newest timing


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


@dataclass(frozen=True)
class RegionPlan:
    """What to run for one frame restored in part."""

    windows: list[tuple[int, int]]  # (y, x) of each window's top left, input pixels of the padded frame
    tiles: list[tuple[int, int, int, int]]  # (y0, y1, x0, x1): each window's own pixels, in the frame
    recomputed: float  # share of the frame's pixels whose output is recomputed


class ChangedRegions:
    """``plan(frame)`` -> a `RegionPlan`, or None to restore the whole frame; one frame at a time.

    ``size`` is the frame's (height, width), ``radius`` the model's receptive radius and
    ``multiple`` its size multiple. ``enabled`` is False where no window could ever be cheaper than
    the frame (a small frame, a model that sees far): `plan` then always says None.
    """

    def __init__(
        self,
        size: tuple[int, int],
        *,
        radius: int,
        multiple: int = 1,
        threshold: float = REGION_THRESHOLD,
        max_cost: float = REGION_COST,
    ) -> None:
        self.height, self.width = size
        self.threshold, self.max_cost = threshold, max_cost
        self.multiple = multiple
        self.context = _round_up(max(radius, 0), multiple)
        self.padded = (_round_up(self.height, multiple), _round_up(self.width, multiple))
        self.tile = _round_up(TILE, multiple)  # so that every window starts on the model's multiple
        side = self.tile + 2 * self.context
        self.window = (min(side, self.padded[0]), min(side, self.padded[1]))
        self._frame_pixels = self.padded[0] * self.padded[1]
        self._window_pixels = self.window[0] * self.window[1]
        self.enabled = self._window_pixels <= max_cost * self._frame_pixels
        self._reach = math.ceil(self.context / _BLOCK)  # blocks of context around a change
        # seconds per whole frame and per window, None until timed (a first call, which may build, is not)
        self._seconds: dict[str, float | None] = {"whole": None, "window": None}
        self._calls = {"whole": 0, "window": 0}
        self._decisions = 0
        self.partial = 0  # frames restored in part
        self.pixels_reused = 0  # output pixels (input resolution) kept from the previous output
        self.reset()

    def reset(self) -> None:
        self._reference: Tensor | None = None

    def note(self, frames: int) -> str:
        """The run summary's line, ``frames`` being all the frames of the stream."""
        kept = self.pixels_reused / (frames * self.height * self.width)
        return f"region reuse: {self.partial} frames restored in part; {kept:.1%} of all output pixels kept"

    def plan(self, frame: Tensor) -> RegionPlan | None:
        """``frame`` is ``1 x 3 x H x W``; call it for every frame the model runs on, in order."""
        if not self.enabled or self._reference is None:
            self._reference = frame.clone()
            return None
        changed = self._changed_blocks(frame)
        near = F.max_pool2d(changed.float(), 2 * self._reach + 1, stride=1, padding=self._reach)
        per_tile = self.tile // _BLOCK
        tiles = F.max_pool2d(near, per_tile, ceil_mode=True)[0, 0] > 0
        count = int(tiles.sum())
        if not self._cheaper(count):
            self._reference = frame.clone()
            return None
        plan = self._windows(tiles)
        # only the changed blocks move the reference: what stayed keeps the input its output came from
        mask = changed.repeat_interleave(_BLOCK, 2).repeat_interleave(_BLOCK, 3)[
            ..., : self.height, : self.width
        ]
        self._reference = torch.where(mask, frame, self._reference)
        self.partial += 1
        self.pixels_reused += round((1.0 - plan.recomputed) * self.height * self.width)
        return plan

    def observe(self, kind: str, seconds: float, count: int) -> None:
        """A model call's time: ``kind`` "whole" (``count`` frames) or "window" (``count`` windows)."""
        self._calls[kind] += 1
        if self._calls[kind] == 1 or count < 1:
            return  # the first call of each kind warms up (or builds) and says nothing of the rest
        each, old = seconds / count, self._seconds[kind]
        self._seconds[kind] = each if old is None else (1 - _EWMA) * old + _EWMA * each

    def restore_windows(
        self, run: Callable[[Tensor], Tensor], windows: Tensor, sync: Callable[[], None]
    ) -> Tensor:
        """``run`` (the backend's) on the stacked windows, clamped, timed for `observe`."""
        started = time.perf_counter()
        # in calls of a few windows: a compiled backend builds for at most two window batches
        out = torch.cat([run(c) for c in windows.split(WINDOW_BATCH)]).clamp_(0.0, 1.0)
        sync()
        self.observe("window", time.perf_counter() - started, windows.shape[0])
        return out

    def _cheaper(self, count: int) -> bool:
        whole, window = self._seconds["whole"], self._seconds["window"]
        self._decisions += 1
        if whole is None or window is None or self._decisions % _PROBE_EVERY == 0:
            return count * self._window_pixels <= self.max_cost * self._frame_pixels
        return count * window <= TIME_COST * whole

    def _changed_blocks(self, frame: Tensor) -> Tensor:
        assert self._reference is not None
        means = (
            F.avg_pool2d((frame - self._reference).float(), _MEAN, ceil_mode=True).abs().amax(1, keepdim=True)
        )
        return F.max_pool2d(means, _BLOCK // _MEAN, ceil_mode=True) > self.threshold

    def _windows(self, tiles: Tensor) -> RegionPlan:
        windows, owned, area = [], [], 0
        wh, ww = self.window
        for ty, tx in tiles.nonzero().tolist():
            y0, x0 = ty * self.tile, tx * self.tile
            y1, x1 = min(y0 + self.tile, self.height), min(x0 + self.tile, self.width)
            # offsets stay on the model's size multiple (y0, x0 and the context are multiples)
            windows.append(
                (
                    window_start(y0, self.context, self.padded[0], wh),
                    window_start(x0, self.context, self.padded[1], ww),
                )
            )
            owned.append((y0, y1, x0, x1))
            area += (y1 - y0) * (x1 - x0)
        return RegionPlan(windows=windows, tiles=owned, recomputed=area / (self.height * self.width))

    def split(self, plans: Sequence[RegionPlan | None], frames: Tensor) -> tuple[list[int], Tensor | None]:
        """``frames`` (one per plan) -> the indices of those that run whole, and the windows of the
        others, in order, stacked (None when there are none)."""
        wh, ww = self.window
        whole, crops = [], []
        for j, plan in enumerate(plans):
            if plan is None:
                whole.append(j)
                continue
            padded, _ = pad_to_multiple(frames[j : j + 1], self.multiple)
            crops += [padded[..., y : y + wh, x : x + ww] for y, x in plan.windows]
        return whole, (torch.cat(crops) if crops else None)


def regions_for(
    descriptor: ModelDescriptor, input_size: tuple[int, int], output_size: tuple[int, int]
) -> ChangedRegions | None:
    """Region reuse for a stream of ``input_size`` frames (width, height), where a tile's output is
    exactly the whole frame's: a convolutional SR model of known receptive radius (not one spandrel
    loaded, whose radius is a guess), its output at the model's own scale. None where it cannot pay."""
    d = descriptor
    if d.task != "sr" or d.architecture.startswith("spandrel"):
        return None
    width, height = input_size
    if output_size != (width * d.scale, height * d.scale):
        return None
    regions = ChangedRegions((height, width), radius=d.receptive_radius, multiple=d.size_multiple)
    return regions if regions.enabled else None


def paste_tiles(previous: Tensor, windows_out: Tensor, plan: RegionPlan, scale: int) -> Tensor:
    """``previous`` output (``1 x 3 x sH x sW``) with each tile's pixels taken from its window's output."""
    out = previous.clone()
    for k, ((wy, wx), (y0, y1, x0, x1)) in enumerate(zip(plan.windows, plan.tiles, strict=True)):
        oy, ox = (y0 - wy) * scale, (x0 - wx) * scale
        h, w = (y1 - y0) * scale, (x1 - x0) * scale
        out[..., y0 * scale : y1 * scale, x0 * scale : x1 * scale] = windows_out[
            k : k + 1, :, oy : oy + h, ox : ox + w
        ]
    return out
