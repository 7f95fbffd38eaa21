"""Ship a training run's EMA weights as a built-in model: export, score, index.

    python tools/ship_weights.py runs/fast-x2 fast-x2
    python tools/ship_weights.py runs/denoise denoise

writes ``vsr/models/weights/fast-x2.safetensors`` (metadata and evaluation scores measured on the
file itself, on the recipe's report folders) and rewrites ``vsr/models/weights/index.json`` with
every shipped file's sha256 and size. Prints the metadata it wrote.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vsr.errors import VsrError
from vsr.models.builtin import DENOISERS, WEIGHTS_DIR, write_index
from vsr.train import export_run

MAX_BYTES = 5_000_000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", type=Path, help="training run folder holding last.pt")
    parser.add_argument(
        "name",
        help="built-in name: FAMILY-xSCALE for SR (fast-x2, compact-x4, ...), denoise or denoise-lite for a denoiser",
    )
    parser.add_argument("--device", default="cpu", help="device for the evaluation (default: cpu)")
    args = parser.parse_args()
    if args.name in DENOISERS:
        scale = "1"
    else:
        family, _, scale = args.name.rpartition("-x")
        if not family or not scale.isdigit():
            parser.error(
                f"name {args.name!r} must look like FAMILY-xSCALE, e.g. fast-x2, or be one of {', '.join(DENOISERS)}"
            )
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    out = WEIGHTS_DIR / f"{args.name}.safetensors"
    try:
        meta = export_run(args.run_dir, out, device=args.device)
    except VsrError as exc:
        print(f"ship_weights: error: {exc}", file=sys.stderr)
        return 1
    if (meta["task"] == "denoise") != (args.name in DENOISERS):
        out.unlink()
        print(f"ship_weights: error: a {meta['task']} run cannot ship as {args.name}", file=sys.stderr)
        return 1
    if meta["scale"] != scale:
        out.unlink()
        print(f"ship_weights: error: the run is x{meta['scale']}, not x{scale}", file=sys.stderr)
        return 1
    if out.stat().st_size > MAX_BYTES:
        out.unlink()
        print(
            f"ship_weights: error: {out.name} is over {MAX_BYTES} bytes; shipped weights stay small",
            file=sys.stderr,
        )
        return 1
    index = write_index()
    print(json.dumps({"file": str(out), **index[args.name], "metadata": meta}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
