"""End-to-end fps against each stage's standalone fps: a thin wrapper over `vsr.pipeline.bench`.

    python tools/bench_pipeline.py [--clip foreman_cif.264] [--model PATH] [--preset veryfast] [--json]

The same as `vsr bench`, with this repository's shared clip and weights as defaults.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vsr.pipeline.bench import run_bench
from vsr.pipeline.options import UpscaleOptions

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="foreman_cif.264", help="a file in ../shared/data/video or a path")
    parser.add_argument("--model", default=str(SHARED / "weights" / "realesr-animevideov3.pth"))
    parser.add_argument("--scale", type=int, default=None)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--codec", default="libx264")
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--stage-frames", type=int, default=24, help="frames for the restore/encode timings")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    clip = Path(args.clip) if Path(args.clip).exists() else SHARED / "video" / args.clip
    options = UpscaleOptions(
        model=args.model, scale=args.scale, precision=args.precision, device=args.device, batch=args.batch,
        codec=args.codec, preset=args.preset,
    )  # fmt: skip
    result = run_bench(options, input_path=clip, stage_frames=args.stage_frames)
    print("\n".join(result.table()))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))


if __name__ == "__main__":
    main()
