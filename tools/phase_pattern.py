"""How strongly a model's outputs carry a fixed pattern with the period of its scale (checkerboard).

    python tools/phase_pattern.py ../shared/data/images/eval/Set14 -s 4 --degradation realistic \\
        --seed 0 -m bicubic -m runs/compact-real-x4-cpu.safetensors -m runs/gan-x4-cpu.safetensors

`vsr.quality.phase_pattern` of each output against its truth (Y levels; see there), averaged over
the folder's images, whose inputs are made as `vsr eval` makes them. Content leaves a floor, so
compare models with each other. Prints one line per model: the mean and the worst image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from vsr.errors import VsrError
from vsr.quality import (
    bicubic_upscale,
    folder_pairs,
    named_upscaler,
    phase_pattern,
)
from vsr.quality.sharpness import PHASE_BLOCK


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="ground-truth images")
    parser.add_argument("-s", "--scale", type=int, required=True)
    parser.add_argument("-m", "--model", action="append", required=True, help="a model or bicubic; repeat")
    parser.add_argument("--degradation", choices=["bicubic", "realistic"], default="bicubic")
    parser.add_argument("--seed", type=int, default=0, help="the realistic degradation's seed")
    args = parser.parse_args()
    if PHASE_BLOCK % args.scale:
        parser.error(f"the scale must divide {PHASE_BLOCK}")
    try:
        upscalers = {
            m: (None if m == "bicubic" else named_upscaler(m, args.scale, "cpu", "fp32")[0])
            for m in args.model
        }
        scores: dict[str, list[float]] = {m: [] for m in args.model}
        for _, hr, lr in folder_pairs(args.folder, args.scale, degradation=args.degradation, seed=args.seed):
            for m, up in upscalers.items():
                out = bicubic_upscale(lr, args.scale) if up is None else up(lr)
                scores[m].append(phase_pattern(out, hr, args.scale))
    except (VsrError, ValueError) as exc:  # ValueError: an image smaller than one block
        print(f"phase_pattern: error: {exc}", file=sys.stderr)
        return 1
    for m, v in scores.items():
        print(f"{m:40s} phase pattern {np.mean(v):.3f}  worst image {max(v):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
