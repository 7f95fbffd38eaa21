"""The denoise pre-pass's cost against the SR model's, on the same frames, alternated.

    OMP_NUM_THREADS=1 python tools/bench_denoise_share.py [-m compact-x2] [--clip vtest.avi]
        [--scale 2] [--frames 10] [--runs 7] [--sigma 10] [--denoiser denoise] [--temporal] [--unfused]

`vsr eval`'s Restore ms/frame of two separate runs differ by up to 10 % on this machine for the
same configuration, more than the pre-pass's share can be read to. Here the built-in denoiser
(`DenoisePass`, as the Restore stage runs it, at a fixed sigma) and the SR model (`TorchBackend`,
as `vsr eval --precision bf16` runs it) take turns on the same LR frames (the clip's first frames,
MATLAB-bicubic 1/scale, float32 on the CPU), run after run; the best and median ms per frame of
each and their ratio are printed. The ratio bounds the pre-pass's share of the Restore stage from
above: Restore also uploads, analyses and downloads. With ``--temporal`` the pre-pass with its
motion-compensated average (``--denoise-temporal on``: DIS flow, the average, the noise map) takes
its turn too. With ``--unfused`` the per-frame pre-pass also runs with each convolution and its ReLU
as two ops (`vsr.models._cpu_conv` off), to time what fusing them saves.
"""

from __future__ import annotations

import argparse
import statistics
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

import vsr.models._cpu_conv as cpu_conv
from vsr.backends import BackendOptions, create_backend
from vsr.models import load_model
from vsr.pipeline.denoise_pass import DenoisePass
from vsr.quality.clip_degrade import ClipDegradation
from vsr.quality.protocol import modcrop
from vsr.quality.video import clip_frames

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "vtest.avi"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", default="compact-x2")
    ap.add_argument("--clip", default=str(CLIP))
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--denoiser", default="denoise", help="the denoiser: built-in name or checkpoint")
    ap.add_argument("--sigma", type=float, default=10.0, help="the denoiser's noise level, 0..255")
    ap.add_argument("--temporal", action="store_true", help="also time the pre-pass with its average")
    ap.add_argument("--unfused", action="store_true", help="also time the denoiser with conv and ReLU apart")
    args = ap.parse_args()
    cpu = torch.device("cpu")
    model = create_backend("torch", load_model(args.model), BackendOptions(device=cpu, precision="bf16"))
    denoise = DenoisePass(load_model(args.denoiser), device=cpu, precision="bf16", sigma=args.sigma)
    truths = ((i, modcrop(rgb, args.scale)) for i, rgb in clip_frames(args.clip, args.frames))
    lrs = [
        torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].float().div_(255.0)
        for _, _, lr in ClipDegradation().pairs(truths, args.scale, Fraction(25))
    ]
    steps = {"model": lambda x: model.run(x), "denoise": lambda x: denoise(x, [False])}
    if args.temporal:
        averaged = DenoisePass(
            load_model(args.denoiser), device=cpu, precision="bf16", sigma=args.sigma, temporal=True
        )
        steps["averaged"] = lambda x: averaged(x, [False])
    if args.unfused:

        def unfused(x: torch.Tensor) -> torch.Tensor:
            fused_op = cpu_conv._POINTWISE
            cpu_conv._POINTWISE = None
            try:
                return denoise(x, [False])
            finally:
                cpu_conv._POINTWISE = fused_op

        steps["unfused"] = unfused
    times: dict[str, list[float]] = {name: [] for name in steps}
    with torch.inference_mode():
        for fn in steps.values():  # warm-up: first-call allocations and oneDNN primitive caches
            fn(lrs[0])
        for _ in range(args.runs):
            for name, fn in steps.items():
                start = time.perf_counter()
                for x in lrs:
                    fn(x)
                times[name].append((time.perf_counter() - start) / len(lrs) * 1000)
    h, w = lrs[0].shape[-2:]
    print(
        f"{args.clip}: {len(lrs)} frames of {w}x{h}, {args.model} x{args.scale} bf16, {torch.get_num_threads()} thread(s)"
    )
    for name, v in times.items():
        print(f"{name:8s} best {min(v):7.2f} ms/frame  median {statistics.median(v):7.2f}")
    for name in [n for n in times if n != "model"]:
        best = min(times[name]) / min(times["model"])
        median = statistics.median(times[name]) / statistics.median(times["model"])
        print(f"{name} / model: {100 * best:.1f} % (best), {100 * median:.1f} % (median)")


if __name__ == "__main__":
    main()
