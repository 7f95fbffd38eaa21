"""`vsr watch` with several feeds: wall time and model calls for each --batch.

    python tools/bench_watch.py --feeds 3 --frames 50 --batch 1 4 --model fast-x2

Cuts FEEDS clips of FRAMES frames from a shared clip (vtest.avi, a fixed street camera, 768x576
scaled to --size; each feed starts FRAMES frames after the one before, so their content differs),
writes a cameras TOML for them in a temporary folder and runs `vsr watch --json` once per --batch
value. Prints one row per batch: wall seconds, frames restored, model calls and how many of them
held frames of more than one feed, and frames per second over the whole run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video" / "vtest.avi"


def cut_clip(source: Path, out: Path, *, start: int, frames: int, size: tuple[int, int]) -> int:
    """Frames [start, start + frames) of ``source`` as H.264 at ``size``, 25 fps; returns the count."""
    written = 0
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 25)
        for i, frame in enumerate(src.decode(video=0)):
            if i < start:
                continue
            if written == frames:
                break
            f = frame.reformat(width=size[0], height=size[1], format="yuv420p")
            f.pts, f.time_base = written, Fraction(1, 25)
            dst.mux(stream.encode(f))
            written += 1
        dst.mux(stream.encode(None))
    return written


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feeds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--size", default="320x240", help="feed size WxH (default 320x240)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--model", default="fast-x2")
    parser.add_argument("--source", type=Path, default=SHARED)
    args = parser.parse_args()
    if not args.source.is_file():
        print(f"bench_watch: error: {args.source} not found", file=sys.stderr)
        return 1
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="vsr-bench-watch-") as tmp:
        folder = Path(tmp)
        for i in range(args.feeds):
            n = cut_clip(
                args.source, folder / f"cam{i}.mp4", start=i * args.frames, frames=args.frames, size=size
            )
            if n != args.frames:
                print(f"bench_watch: error: {args.source} has too few frames for feed {i}", file=sys.stderr)
                return 1
        print(f"{args.feeds} feeds x {args.frames} frames at {args.size}, model {args.model}")
        print("| batch | wall s | frames restored | model calls | cross-feed calls | fps |")
        print("|---:|---:|---:|---:|---:|---:|")
        for batch in args.batch:
            config = folder / f"cameras-b{batch}.toml"
            cameras = "".join(
                f'\n[[camera]]\nname = "cam{i}"\nurl = "cam{i}.mp4"\noutput = "out-b{batch}-{i}.mp4"\n'
                for i in range(args.feeds)
            )
            config.write_text(f'model = "{args.model}"\nbatch = {batch}\n{cameras}')
            report = folder / f"report-b{batch}.json"
            started = time.perf_counter()
            run = subprocess.run(
                [sys.executable, "-m", "vsr", "watch", str(config), "--json", str(report), "--overwrite"],
                capture_output=True,
                text=True,
                check=False,
            )
            elapsed = time.perf_counter() - started
            if run.returncode != 0:
                print(
                    f"bench_watch: error: vsr watch exited {run.returncode}: {run.stderr.strip()}",
                    file=sys.stderr,
                )
                return 1
            s = json.loads(report.read_text())
            restored = s["frames_restored"]
            print(
                f"| {batch} | {s['wall_s']:.2f} | {restored} | {s['model_calls']} | "
                f"{s['cross_feed_calls']} | {restored / s['wall_s']:.1f} |"
            )
            print(f"  (process {elapsed:.2f} s with start-up)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
