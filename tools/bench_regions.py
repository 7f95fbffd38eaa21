"""Changed-region reuse on a fixed camera: Restore time, the share reused, and the output against every frame.

    python tools/bench_regions.py [--clip vtest.avi] [--frames 100] [--model fast-x2]
                                  [--thresholds 4,6,8] [--threads 1] [--json]

The clip's frames as they are decoded (vtest.avi: a fixed street camera, 768x576) go through the
Restore stage as rgb24, in order, one frame per call (as a live feed arrives), once per
configuration: every frame whole; still-frame reuse alone (`--reuse-still --no-reuse-regions`);
and still-frame plus changed-region reuse (`--reuse-still`, the default) at each change threshold
(levels of 0..255 on 4x4 block means; the shipped one is `vsr.pipeline.regions.REGION_THRESHOLD`).
For each: Restore ms per frame after a warm-up frame, frames restored in part, the share of output
pixels reused, and PSNR (Y of BT.601, and RGB) of each output frame against the every-frame output:
mean and the worst frame. With --degrade the input is the MATLAB-bicubic x1/2 of each frame (the SR
protocol, `vsr.quality.protocol.degrade`) and the mean Y-PSNR against the clip's own frames (the
ground truth, border of 2 cut) is printed too: what "within 0.1 dB of running every frame" means. The machine's load moves the times; the configurations run one after
another on the same frames.
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
from vsr.pipeline.regions import REGION_THRESHOLD
from vsr.pipeline.restore import RestoreConfig, RestoreStage
from vsr.quality.metrics import psnr_y
from vsr.quality.protocol import degrade
from vsr.quality.video import clip_frames

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RGB = ColorDescription(matrix=ColorMatrix.BT709, range=ColorRange.FULL, primaries=1, transfer=1)


def _frames(images: list[np.ndarray]) -> list[Frame]:
    h, w = images[0].shape[:2]
    return [
        Frame(index=i, pts=i, time_base=Fraction(1, 25), pix_fmt="rgb24", width=w, height=h,
              planes=(np.ascontiguousarray(img),), color=RGB)
        for i, img in enumerate(images)
    ]  # fmt: skip


def _psnr(a: np.ndarray, b: np.ndarray, *, y: bool) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if y:
        weights = np.array([65.481, 128.553, 24.966]) / 255.0
        a64, b64 = a64 @ weights, b64 @ weights
    mse = float(np.mean((a64 - b64) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _run(stage: RestoreStage, frames: list[Frame]) -> tuple[list[np.ndarray], float]:
    out = [stage([frames[0]])[0].planes[0]]  # warm-up, not timed
    start = time.perf_counter()
    for frame in frames[1:]:
        out.append(stage([frame])[0].planes[0])
    return out, (time.perf_counter() - start) * 1000.0 / (len(frames) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="vtest.avi", help="a file in ../shared/data/video or a path")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--model", default="fast-x2")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--thresholds", default=f"{REGION_THRESHOLD * 255:g}", help="comma-separated levels")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--degrade", action="store_true", help="input x1/2, scored against the clip")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clip = Path(args.clip) if Path(args.clip).exists() else SHARED / "video" / args.clip
    truth = [rgb for _, rgb in clip_frames(clip, args.frames)]
    if args.degrade:
        truth = [x[: x.shape[0] // 2 * 2, : x.shape[1] // 2 * 2] for x in truth]
    frames = _frames([degrade(x, 2) for x in truth] if args.degrade else truth)
    model = load_model(args.model)
    device = torch.device("cpu")
    backend = create_backend(
        "torch",
        model,
        BackendOptions(device=device, precision=resolve_precision(args.precision, device, model.descriptor)),
    )
    w, h = frames[0].width, frames[0].height
    s = model.descriptor.scale
    base = RestoreConfig(input_size=(w, h), input_pix_fmt="rgb24", input_color=RGB, output_size=(w * s, h * s),
                         output_pix_fmt="rgb24", output_color=RGB)  # fmt: skip
    configs: list[tuple[str, dict[str, object], float | None]] = [
        ("every frame", {}, None),
        ("still frames only", {"reuse_still": True, "reuse_regions": False}, None),
    ] + [
        (f"regions, {t:g} levels", {"reuse_still": True}, t / 255)
        for t in map(float, args.thresholds.split(","))
    ]
    rows, reference = [], None
    for label, options, threshold in configs:
        stage = RestoreStage(backend, model.descriptor, RestoreConfig(**{**base.__dict__, **options}))
        if threshold is not None and stage._regions is not None:
            stage._regions.threshold = threshold  # the tool's knob; the pipeline uses the shipped level
        out, ms = _run(stage, frames)
        reference = out if reference is None else reference
        y = [_psnr(a, b, y=True) for a, b in zip(out, reference, strict=True)]
        rgb = [_psnr(a, b, y=False) for a, b in zip(out, reference, strict=True)]
        rows.append({
            "config": label, "restore_ms": round(ms, 1), "frames_reused": stage.frames_reused,
            "frames_partial": stage.frames_partial, "pixels_reused": round(stage.pixels_reused, 4),
            "psnr_y_mean": round(float(np.mean(y)), 2), "psnr_y_worst": round(min(y), 2),
            "psnr_rgb_mean": round(float(np.mean(rgb)), 2),
            "truth_psnr_y": round(float(np.mean([psnr_y(a, b, crop=2) for a, b in zip(out, truth, strict=True)])), 3)
            if args.degrade
            else None,
            "steps_ms": {n: round(c.busy_s * 1000.0 / len(frames), 1) for n, c in stage.clocks.items()},
        })  # fmt: skip
    print(f"{clip.name}: {len(frames)} frames {w}x{h} -> {w * s}x{h * s}, {model.descriptor.name}, "
          f"{backend.precision}, {args.threads} thread(s); PSNR against the every-frame output")  # fmt: skip
    print(f"{'config':<22}{'ms/frame':>9}{'speed-up':>9}{'still':>7}{'partial':>8}{'reused':>8}"
          f"{'Y mean':>8}{'Y worst':>8}{'RGB':>7}")  # fmt: skip
    for r in rows:
        print(f"{r['config']:<22}{r['restore_ms']:>9}{rows[0]['restore_ms'] / r['restore_ms']:>8.2f}x"
              f"{r['frames_reused']:>7}{r['frames_partial']:>8}{r['pixels_reused']:>8.1%}"
              f"{r['psnr_y_mean']:>8}{r['psnr_y_worst']:>8}{r['psnr_rgb_mean']:>7}  "
              + (f"truth Y {r['truth_psnr_y']}  " if args.degrade else "")
              + " ".join(f"{k} {v}" for k, v in r["steps_ms"].items()))  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
