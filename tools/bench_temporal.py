"""Restore-stage cost and effect of --temporal and --reuse-still on a real clip made low-resolution.

    python tools/bench_temporal.py [--clip vtest.avi] [--frames 30] [--model PATH|bicubic] [--noise 0] [--json]

The first --frames frames of the clip are the ground truth; each is shrunk by the MATLAB-style
bicubic x1/2 of the SR protocol (`vsr.quality.degrade`; with --noise, Gaussian noise of that sigma
on 0..255 is added and rounded, as a noisy camera would deliver it) and fed as rgb24 frames to the
Restore stage, once per configuration: off, temporal, reuse, both. For each: the Restore time per
frame and per step (after a warm-up frame), mean Y-PSNR against the ground truth (border of 2
cut), the warping error (`vsr.quality.flicker`) next to the ground truth's own, and the frames
reused. Timings on a shared machine are indicative only.
"""

from __future__ import annotations

import argparse
import json
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from vsr.backends import BackendOptions, create_backend, resolve_precision
from vsr.media import ColorDescription, Frame
from vsr.media.color import ColorMatrix, ColorRange
from vsr.models import load_model
from vsr.pipeline.restore import RestoreConfig, RestoreStage
from vsr.quality.flicker import flicker
from vsr.quality.metrics import psnr_y
from vsr.quality.protocol import degrade
from vsr.quality.video import clip_frames

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RGB = ColorDescription(matrix=ColorMatrix.BT709, range=ColorRange.FULL, primaries=1, transfer=1)
CONFIGS = {
    "off": {},
    "temporal": {"temporal": True},
    "reuse": {"reuse_still": True},
    "temporal+reuse": {"temporal": True, "reuse_still": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="vtest.avi", help="a file in ../shared/data/video or a path")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--model", default=str(SHARED / "weights" / "realesr-animevideov3.pth"))
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--noise", type=float, default=0.0, help="Gaussian sigma (0..255) added to the input")
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--flow", default="dis", choices=["dis", "torch"], help="the motion estimator")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated: " + ", ".join(CONFIGS))
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    clip = Path(args.clip) if Path(args.clip).exists() else SHARED / "video" / args.clip

    truth = [rgb for _, rgb in clip_frames(clip, args.frames)]
    truth = [t[: t.shape[0] // 2 * 2, : t.shape[1] // 2 * 2] for t in truth]
    rng = np.random.default_rng(0)
    low = [degrade(t, 2) for t in truth]
    if args.noise:
        low = [np.clip(np.rint(x + rng.normal(0, args.noise, x.shape)), 0, 255).astype(np.uint8) for x in low]
    h, w = low[0].shape[:2]
    frames = [
        Frame(
            index=i,
            pts=i,
            time_base=Fraction(1, 25),
            pix_fmt="rgb24",
            width=w,
            height=h,
            planes=(x,),
            color=RGB,
        )
        for i, x in enumerate(low)
    ]
    model = (
        load_model(args.model, scale=2) if args.model in ("bicubic", "lanczos") else load_model(args.model)
    )
    device = torch.device("cpu")
    precision = resolve_precision(args.precision, device, model.descriptor)
    backend = create_backend("torch", model, BackendOptions(device=device, precision=precision))
    results = []
    for name in args.configs.split(","):
        config = RestoreConfig(
            input_size=(w, h), input_pix_fmt="rgb24", input_color=RGB, output_size=(2 * w, 2 * h),
            output_pix_fmt="rgb24", output_color=RGB, temporal_strength=args.strength, temporal_flow=args.flow,
            **CONFIGS[name],
        )  # fmt: skip
        warm = RestoreStage(backend, model.descriptor, config)
        warm(frames[:2])  # oneDNN picks its kernels, DIS allocates: not part of the timing
        stage = RestoreStage(backend, model.descriptor, config)
        started = time.perf_counter()
        out = [f.planes[0] for frame in frames for f in stage([frame])]
        seconds = time.perf_counter() - started
        scores = flicker(out, truth)
        results.append(
            {
                "config": name,
                "restore_ms_per_frame": round(1000 * seconds / len(frames), 1),
                "steps_ms_per_frame": {
                    k: round(1000 * c.busy_s / len(frames), 1) for k, c in stage.clocks.items()
                },
                "psnr_y": round(
                    float(np.mean([psnr_y(o, t, crop=2) for o, t in zip(out, truth, strict=True)])), 3
                ),
                "warping_error": round(scores.output, 3),
                "warping_error_truth": round(scores.ground_truth, 3),
                "frames_reused": stage.frames_reused,
                "scene_cuts": stage.scene_cuts,
            }
        )
    print(f"clip {clip.name}: {len(frames)} frames {w}x{h} -> {2 * w}x{2 * h}, model {model.descriptor.name}, "
          f"{precision}, input noise sigma {args.noise:g}, temporal strength {args.strength:g} ({args.flow} flow), "
          f"{torch.get_num_threads()} torch threads")  # fmt: skip
    print(
        f"{'config':<16}{'restore ms':>11}{'Y-PSNR':>9}{'warp err':>10}{'(truth)':>9}{'reused':>8}  steps (ms)"
    )
    for r in results:
        steps = " ".join(f"{k}={v}" for k, v in r["steps_ms_per_frame"].items())  # type: ignore[union-attr]
        print(f"{r['config']:<16}{r['restore_ms_per_frame']:>11}{r['psnr_y']:>9}{r['warping_error']:>10}"
              f"{r['warping_error_truth']:>9}{r['frames_reused']:>8}  {steps}")  # fmt: skip
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
