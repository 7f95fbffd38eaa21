"""4K encode speed of the Sink: libx264/libx265 presets and thread counts on real upscaled frames.

    python tools/bench_encode.py [--frames 24] [--size 3840x2160] [--presets ultrafast,veryfast,medium]
                                 [--threads 0] [--instances 1] [--gop N] [--codec libx264] [--json]

The encoder is the pipeline's own (`FileSink`, what `vsr upscale` writes with), fed 4:2:0 frames
that look like an SR output: bigbuckbunny's 1280x720 frames scaled to --size by swscale's bicubic
(smooth, detailed where the source is, moving as the film moves). The frames are made first and
kept in memory; only ``write_frame`` and the final ``close`` (the encoder's flush) are timed.
--threads 0 lets the encoder pick (x264: 1.5x the cores); several values give a row each.
--instances N encodes GOP-aligned chunks on N encoders at once (`vsr upscale --encoders N`), each
with --threads threads (0: the cores shared out); every instance count gets its rows. A chunk is
one GOP: --gop sets it for every row (x264's own keyint is 250 otherwise, and the chunked default
2 s = 48 frames would leave a short run one chunk). On a machine with no GPU encoder this is the stage that caps a fast GPU run at 4K (issue 4).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vsr.media import ColorDescription, FileSink, Frame
from vsr.media.color import ColorMatrix, ColorRange
from vsr.media.output_spec import VideoOutputSpec

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "video" / "bigbuckbunny.mp4"
COLOR = ColorDescription(matrix=ColorMatrix.BT709, range=ColorRange.LIMITED, primaries=1, transfer=1)


def upscaled_frames(count: int, width: int, height: int) -> list[Frame]:
    frames = []
    with av.open(str(CLIP)) as container:
        for index, decoded in enumerate(container.decode(video=0)):
            if index == count:
                break
            big = decoded.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC")
            planes = tuple(np.ascontiguousarray(p) for p in _planes(big, width, height))
            frames.append(
                Frame(
                    index=index,
                    pts=index,
                    time_base=Fraction(1, 24),
                    pix_fmt="yuv420p",
                    width=width,
                    height=height,
                    planes=planes,
                    color=COLOR,
                )
            )
    return frames


def _planes(frame: av.VideoFrame, width: int, height: int) -> list[np.ndarray]:
    out = []
    for k, plane in enumerate(frame.planes):
        w, h = (width, height) if k == 0 else (width // 2, height // 2)
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        out.append(rows[:h, :w])
    return out


def encode_fps(
    frames: list[Frame], codec: str, preset: str, threads: int, instances: int = 1, gop: int | None = None
) -> tuple[float, int]:
    f = frames[0]
    spec = VideoOutputSpec(
        width=f.width, height=f.height, pix_fmt="yuv420p", time_base=f.time_base, frame_rate=Fraction(24),
        color=COLOR, codec=codec, preset=preset, threads=threads, encoder_instances=instances,
        options={"g": str(gop)} if gop else {},
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "out.mkv"
        started = time.perf_counter()
        with FileSink(path, spec) as sink:
            for frame in frames:
                sink.write_frame(frame)
        seconds = time.perf_counter() - started
        size = path.stat().st_size
    return len(frames) / seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="3840x2160")
    parser.add_argument("--codec", default="libx264")
    parser.add_argument("--presets", default="ultrafast,veryfast,medium")
    parser.add_argument("--threads", default="0", help="comma-separated encoder thread counts (0: auto)")
    parser.add_argument("--instances", default="1", help="comma-separated encoder instance counts")
    parser.add_argument("--gop", type=int, default=None, help="frames per GOP (and chunk) in every row")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    frames = upscaled_frames(args.frames, width, height)
    print(f"{args.codec}, {len(frames)} frames {width}x{height} yuv420p (bigbuckbunny, bicubic-scaled), "
          f"GOP {args.gop or 'default'}, {os.cpu_count()} CPUs, PyAV {av.__version__}")  # fmt: skip
    print(f"{'preset':<11}{'instances':>10}{'threads':>8}{'fps':>9}{'Mbit/s at 24 fps':>18}")
    rows = []
    for preset in args.presets.split(","):
        for instances in (int(n) for n in args.instances.split(",")):
            for threads in (int(t) for t in args.threads.split(",")):
                fps, size = encode_fps(frames, args.codec, preset, threads, instances, args.gop)
                rate = size * 8 / (len(frames) / 24) / 1e6
                rows.append({
                    "preset": preset, "instances": instances, "threads": threads,
                    "fps": round(fps, 2), "mbit_s": round(rate, 1),
                })  # fmt: skip
                print(f"{preset:<11}{instances:>10}{threads or 'auto':>8}{fps:>9.2f}{rate:>18.1f}")
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
