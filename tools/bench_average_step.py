"""The denoise pre-pass's average step on the CPU: the OpenCV/numpy form against the torch ops.

    OMP_NUM_THREADS=1 python tools/bench_average_step.py [--clip ../shared/data/video/vtest.avi]
        [--scale 2] [--frames 10] [--noise 15] [--runs 7]

The clip's first frames, MATLAB-bicubic 1/scale with Gaussian noise of ``--noise`` (as `vsr eval`
makes its noisy input, without the H.264 round trip), go through `MotionAverage` once to record
each step's inputs (the running average, its variance, the frame, the flow); then each run times
`vsr.ops.average_cpu.average_step_cpu` (what `average_step` runs for one float32 frame on the CPU)
and `vsr.ops.temporal.average_step_torch` (the torch ops, with OpenCV's remap for the warps) on
the same inputs, alternating. Prints the best and median ms per step, and how far apart the two
results are.
"""

from __future__ import annotations

import argparse
import statistics
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

import vsr.pipeline.temporal as pt
from vsr.ops.average_cpu import average_step_cpu
from vsr.ops.temporal import average_step_torch
from vsr.quality.clip_degrade import ClipDegradation
from vsr.quality.protocol import modcrop
from vsr.quality.video import clip_frames

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "vtest.avi"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=str(CLIP))
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--noise", type=float, default=15.0)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    truths = ((i, modcrop(rgb, args.scale)) for i, rgb in clip_frames(args.clip, args.frames))
    lrs = [
        torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].float().div_(255.0).contiguous()
        for _, _, lr in ClipDegradation(noise=args.noise).pairs(truths, args.scale, Fraction(25))
    ]
    sigma = args.noise / 255.0
    recorded: list[tuple[torch.Tensor, ...]] = []
    real_step = pt.average_step

    def record(average, variance, current, flow, sigma_, **kw):  # type: ignore[no-untyped-def]
        recorded.append((average.clone(), variance.clone(), current.clone(), flow.clone()))
        return real_step(average, variance, current, flow, sigma_, **kw)

    pt.average_step = record  # type: ignore[assignment]
    averager = pt.MotionAverage()
    with torch.inference_mode():
        for k, x in enumerate(lrs):
            averager(x, sigma, k == 0)
    pt.average_step = real_step
    settings = dict(tolerance=averager.tolerance, min_variance=sigma * sigma / averager.frames)
    steps = {"opencv": average_step_cpu, "torch": average_step_torch}
    times: dict[str, list[float]] = {name: [] for name in steps}
    with torch.inference_mode():
        for fn in steps.values():
            fn(*recorded[0], sigma, **settings)  # type: ignore[arg-type]
        for _ in range(args.runs):
            for name, fn in steps.items():
                start = time.perf_counter()
                for inputs in recorded:
                    fn(*inputs, sigma, **settings)  # type: ignore[arg-type]
                times[name].append((time.perf_counter() - start) / len(recorded) * 1000)
        apart = max(
            float((a - b).abs().max())
            for inputs in recorded
            for a, b in zip(
                average_step_cpu(*inputs, sigma, **settings),  # type: ignore[arg-type]
                average_step_torch(*inputs, sigma, **settings),  # type: ignore[arg-type]
                strict=True,
            )
        )
    h, w = lrs[0].shape[-2:]
    print(f"{args.clip}: {len(recorded)} steps at {w}x{h}, {torch.get_num_threads()} torch thread(s)")
    for name, v in times.items():
        print(f"{name:7s} best {min(v):6.3f} ms/step  median {statistics.median(v):6.3f}")
    print(f"largest difference between the two results: {apart:.2e}")


if __name__ == "__main__":
    main()
