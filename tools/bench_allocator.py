"""`vsr upscale` with glibc's malloc defaults against the thresholds the CLI sets (vsr.cli.allocator).

    python tools/bench_allocator.py [--clip ../shared/data/video/vtest.avi] [--frames 40]
        [-m compact-x2] [--runs 2] [-- extra vsr upscale options]

Cuts the clip's first frames into a temporary H.264 file (CRF 18), then runs
``python -m vsr upscale`` on it with ``VSR_MALLOC=system`` and without, taking turns, and prints
each run's wall time and peak RSS and whether the two outputs decode to the same frames.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video" / "vtest.avi"


def cut(clip: Path, frames: int, out: Path) -> int:
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        video = src.streams.video[0]
        rate = video.average_rate or 25
        stream = dst.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        stream.options = {"crf": "18"}
        n = 0
        for frame in src.decode(video):
            frame.pts = None
            dst.mux(stream.encode(frame.reformat(format="yuv420p")))
            n += 1
            if n == frames:
                break
        dst.mux(stream.encode())
    return n


def frames_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            digest.update(frame.to_ndarray(format="rgb24").tobytes())
    return digest.hexdigest()


def run(args: list[str], malloc: str) -> tuple[float, float]:
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)
    if malloc == "system":
        env["VSR_MALLOC"] = "system"
    else:
        env.pop("VSR_MALLOC", None)
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "vsr", *args], env=env, stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code:
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-1:]
            sys.exit(f"vsr {' '.join(args)} failed with exit code {code}: {' '.join(tail)}")
    return wall, usage.ru_maxrss / 1e6  # KiB -> GB (approximately)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, default=CLIP)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("-m", "--model", default="compact-x2")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("extra", nargs="*", help="more vsr upscale options (after --)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "in.mp4"
        n = cut(args.clip, args.frames, source)
        print(f"{args.clip.name}: first {n} frames, vsr upscale -m {args.model} {' '.join(args.extra)}")
        outputs = {}
        for k in range(args.runs):
            for malloc in ("system", "tuned"):
                out = folder / f"{malloc}.mp4"
                cmd = ["upscale", str(source), str(out), "-m", args.model, "-y", *args.extra]
                wall, rss = run(cmd, malloc)
                print(
                    f"run {k + 1}  malloc {malloc:6s}  {wall:6.2f} s  {n / wall:5.2f} fps  peak RSS {rss:.2f} GB"
                )
                outputs[malloc] = out
        same = frames_digest(outputs["system"]) == frames_digest(outputs["tuned"])
        print(f"outputs decode to the same frames: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
