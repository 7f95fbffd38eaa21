"""Side-by-side crops of several models on the same degraded inputs: bicubic | model ... | truth.

    python tools/compare_crops.py ../shared/data/images/eval/Set14 -s 2 --degradation realistic \\
        --seed 0 -m runs/compact-real-x2-cpu.safetensors -m runs/gan-x2-cpu.safetensors \\
        --out docs/crops/gan-x2

Each image gets one PNG, ``NAME_xS.png``: the central ``--size`` ground-truth pixels of the bicubic
upscale of the LR, of each model's output in the order given, and of the ground truth, each
enlarged ``--zoom`` times with nearest-neighbour pixels. The LR is made exactly as `vsr eval`
makes it (``--degradation realistic --seed N`` gives image i the seed (N, i) in name order), so
the crops show the inputs the reported figures were measured on. Prints each file it wrote.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from vsr.errors import VsrError
from vsr.quality import (
    bicubic_upscale,
    folder_pairs,
    named_upscaler,
    side_by_side,
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="ground-truth images")
    parser.add_argument("-s", "--scale", type=int, required=True)
    parser.add_argument("-m", "--model", action="append", required=True, help="a model; repeat for more")
    parser.add_argument("--degradation", choices=["bicubic", "realistic"], default="bicubic")
    parser.add_argument("--seed", type=int, default=0, help="the realistic degradation's seed")
    parser.add_argument("--size", type=int, default=96, help="ground-truth pixels per crop side")
    parser.add_argument("--zoom", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    args = parser.parse_args()
    try:
        upscalers = [named_upscaler(m, args.scale, "cpu", "fp32")[0] for m in args.model]
        args.out.mkdir(parents=True, exist_ok=True)
        for path, hr, lr in folder_pairs(
            args.folder, args.scale, degradation=args.degradation, seed=args.seed
        ):
            panels = [bicubic_upscale(lr, args.scale), *(up(lr) for up in upscalers), hr]
            out = args.out / f"{path.stem}_x{args.scale}.png"
            Image.fromarray(side_by_side(panels, size=args.size, zoom=args.zoom)).save(out)
            print(out)
    except VsrError as exc:
        print(f"compare_crops: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
