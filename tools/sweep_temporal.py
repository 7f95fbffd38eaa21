"""Temporal smoothing's strength and warp tolerance against PSNR and flicker, on one clip.

    OMP_NUM_THREADS=1 python tools/sweep_temporal.py [--clip ../shared/data/video/vtest.avi]
        [-m compact-x2] [--frames 30] [--strengths 0.5,0.6,0.7] [--tolerances 2,3,4,6]

The model runs once per frame (bf16 on the CPU, as `vsr eval --precision bf16` runs it); its
outputs are kept, and every (strength, tolerance) pair then smooths the same outputs with
`vsr.pipeline.temporal.TemporalSmoother` and is scored as `vsr eval` scores a clip: input made by
the MATLAB bicubic shrink of each frame, Y-PSNR with the scale cut from each border (mean over
frames), and the warping error of consecutive outputs with motion measured on the ground truth,
next to the ground truth's own. Prints a row per pair, and the temporal step's ms per frame
(the smoothing alone; the model is not in it). Tolerances are in levels of 255.

``--detail`` adds, for each pair, a smoother that blends only the model's detail: the output less
the bicubic enlargement of its input, warped and blended as the shipped smoother blends the whole
output, then the current frame's own enlargement added back. It measures how much of a clip's
warping error is the model's invented detail and how much follows the input (an experiment: the
pipeline blends the whole output).
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction
from typing import get_args

import numpy as np
import torch
import torch.nn.functional as F

from vsr.backends import BackendOptions, create_backend
from vsr.models import load_model
from vsr.ops.flow import FlowPreset
from vsr.pipeline.temporal import TemporalSmoother
from vsr.quality.clip_degrade import ClipDegradation
from vsr.quality.flicker import FlickerMeter
from vsr.quality.protocol import modcrop, score
from vsr.quality.video import clip_frames


def _u8(t: torch.Tensor) -> np.ndarray:
    return (t[0].permute(1, 2, 0).clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()


class DetailSmoother(TemporalSmoother):
    """`TemporalSmoother` on the output less the bicubic enlargement of its input: what it holds as
    the previous output is the previous (blended) detail, which is signed, so its warp is not clamped."""

    clamp_warped = False

    def __call__(self, lr: torch.Tensor, restored: torch.Tensor, new_scene: list[bool]) -> torch.Tensor:
        enlarged = F.interpolate(lr.float(), size=restored.shape[-2:], mode="bicubic", align_corners=False)
        return (super().__call__(lr, restored - enlarged, new_scene) + enlarged).clamp_(0.0, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="../shared/data/video/vtest.avi")
    parser.add_argument("-m", "--model", default="compact-x2")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--strengths", default="0.5,0.6,0.7")
    parser.add_argument("--tolerances", default="2,3,4,6")
    parser.add_argument(
        "--preset", default="fine", choices=list(get_args(FlowPreset)), help="DIS preset (vsr.ops.flow)"
    )
    parser.add_argument("--detail", action="store_true", help="also blend only the model's detail")
    args = parser.parse_args()
    loaded = load_model(args.model)
    scale = loaded.descriptor.scale
    backend = create_backend("torch", loaded, BackendOptions(device=torch.device("cpu"), precision="bf16"))
    truths = ((i, modcrop(rgb, scale)) for i, rgb in clip_frames(args.clip, args.frames))
    hrs, lrs, outs = [], [], []
    for _, hr, lr in ClipDegradation().pairs(truths, scale, Fraction(25)):
        x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].float() / 255.0
        with torch.inference_mode():
            outs.append(backend.run(x).clamp_(0.0, 1.0))
        hrs.append(hr)
        lrs.append(x)
    pairs = [
        (s, t) for s in (float(v) for v in args.strengths.split(",")) for t in args.tolerances.split(",")
    ]
    configs: list[tuple[float, str, str] | None] = [None, *((s, t, "") for s, t in pairs)]  # None: off
    smoothers: list[TemporalSmoother | None] = [None] + [
        TemporalSmoother(s, tolerance=float(t) / 255.0, preset=args.preset) for s, t in pairs
    ]
    if args.detail:
        configs += [(s, t, "detail") for s, t in pairs]
        smoothers += [DetailSmoother(s, tolerance=float(t) / 255.0, preset=args.preset) for s, t in pairs]
    meter = FlickerMeter(len(configs))
    psnr = [[] for _ in configs]
    seconds = [0.0] * len(configs)
    for k, (hr, lr, out) in enumerate(zip(hrs, lrs, outs, strict=True)):
        frames = []
        for j, smoother in enumerate(smoothers):
            started = time.perf_counter()
            y = out if smoother is None else smoother(lr, out.clone(), [k == 0])
            seconds[j] += time.perf_counter() - started
            frames.append(_u8(y))
            psnr[j].append(score(frames[-1], hr, scale=scale).psnr_y)
        meter.update(hr, frames)
    flicker = meter.scores()
    base_p, base_f = float(np.mean(psnr[0])), flicker[0].output
    print(
        f"{args.clip}: {len(hrs)} frames, {args.model} (bf16) x{scale}; truth's warping error {flicker[0].ground_truth:.3f}"
    )
    print(
        f"{'strength':>8} {'tolerance':>9} {'PSNR-Y':>8} {'change':>7} {'warp err':>9} {'change':>8} {'ms/frame':>9}"
    )
    for j, config in enumerate(configs):
        p, f = float(np.mean(psnr[j])), flicker[j].output
        s, t = ("off", "-") if config is None else (f"{config[0]:.2f}", config[1])
        if config is not None and config[2]:
            s = f"{config[2]} {s}"
        print(
            f"{s:>8} {t:>9} {p:>8.3f} {p - base_p:>+7.3f} {f:>9.3f} {100 * (f / base_f - 1):>+7.1f}%"
            f" {1000 * seconds[j] / len(hrs):>9.1f}"
        )


if __name__ == "__main__":
    main()
