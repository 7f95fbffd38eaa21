"""The temporal step on the CPU: the previous output's bicubic warp through grid_sample or OpenCV's
remap, and DIS at the `medium`, `fast` and `fine` presets (`vsr.ops.flow`; `fine` is the default).

    OMP_NUM_THREADS=1 python tools/bench_temporal_step.py [--clip ../shared/data/video/vtest.avi]
        [--scale 2] [--frames 30] [--runs 5]

The clip's first frames stand for the model's output (float32, contiguous N x C x H x W, what a
backend returns) and their MATLAB-bicubic 1/scale shrinks for its input, as `vsr eval` makes them.
Each run times, per frame: the warp of the previous output alone, both ways, then the whole
`TemporalSmoother` step (flow, confidence, warp, blend) for each configuration, alternating the
configurations from run to run. Prints the best and the median over the runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch

import vsr.pipeline.temporal as pt
from vsr.ops.temporal import _grid_sample_upscaled, warp_upscaled
from vsr.pipeline.temporal import TemporalSmoother
from vsr.quality.clip_degrade import ClipDegradation
from vsr.quality.protocol import modcrop
from vsr.quality.video import clip_frames

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "vtest.avi"


def _grid_sample_warp(image: torch.Tensor, flow: torch.Tensor, *, mode: str = "bicubic") -> torch.Tensor:
    return _grid_sample_upscaled(image, flow, mode)  # what warp_upscaled ran on every device before


def _per_frame(fn: Callable[[int], object], count: int) -> float:
    start = time.perf_counter()
    for k in range(1, count):
        fn(k)
    return (time.perf_counter() - start) / (count - 1) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=str(CLIP))
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    outs, lrs = [], []
    truths = ((i, modcrop(rgb, args.scale)) for i, rgb in clip_frames(args.clip, args.frames))
    for _, hr, lr in ClipDegradation().pairs(truths, args.scale, Fraction(25)):
        outs.append(torch.from_numpy(hr).permute(2, 0, 1)[None].float().div_(255.0).contiguous())
        lrs.append(torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].float().div_(255.0))
    count = len(outs)
    h, w = lrs[0].shape[-2:]
    flows = [
        torch.from_numpy(np.random.default_rng(k).normal(0, 1, (1, 2, h, w))).float() for k in range(count)
    ]
    print(f"{args.clip}: {count} frames, {w}x{h} -> {outs[0].shape[-1]}x{outs[0].shape[-2]}, one thread")

    def smoother_run(warp_fn: Callable[..., torch.Tensor], preset: str) -> float:
        pt.warp_upscaled = warp_fn
        smoother = TemporalSmoother(0.6, preset=preset)  # type: ignore[arg-type]
        smoother(lrs[0], outs[0], [True])
        try:
            return _per_frame(lambda k: smoother(lrs[k], outs[k], [False]), count)
        finally:
            pt.warp_upscaled = warp_upscaled

    configs: dict[str, Callable[[], float]] = {
        "warp alone, grid_sample": lambda: _per_frame(
            lambda k: _grid_sample_warp(outs[k - 1], flows[k]), count
        ),
        "warp alone, remap": lambda: _per_frame(lambda k: warp_upscaled(outs[k - 1], flows[k]), count),
        "step, grid_sample, DIS medium": lambda: smoother_run(_grid_sample_warp, "medium"),
        "step, remap, DIS medium": lambda: smoother_run(warp_upscaled, "medium"),
        "step, remap, DIS fast": lambda: smoother_run(warp_upscaled, "fast"),
        "step, remap, DIS fine": lambda: smoother_run(warp_upscaled, "fine"),
    }
    times: dict[str, list[float]] = {name: [] for name in configs}
    with torch.inference_mode():
        for _ in range(args.runs):
            for name, fn in configs.items():
                times[name].append(fn())
    for name, v in times.items():
        print(f"{name:32s} best {min(v):6.2f} ms/frame  median {sorted(v)[len(v) // 2]:6.2f}")


if __name__ == "__main__":
    main()
