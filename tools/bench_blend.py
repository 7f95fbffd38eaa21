"""The temporal step's cost with `vsr.ops.temporal.blend` against the plain lerp it replaced.

    OMP_NUM_THREADS=1 python tools/bench_blend.py [--frames 40] [--runs 6]

vtest.avi's first frames (768x576, channels_last float32, as a CPU model hands them over) are
smoothed by `TemporalSmoother` with their x1/4 area-shrunk copies as the model's input; each run
times the step per frame, alternating the two blends; prints the best and the median of the runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import av
import torch
import torch.nn.functional as F

import vsr.pipeline.temporal as pt
from vsr.ops.temporal import blend
from vsr.pipeline.temporal import TemporalSmoother

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "vtest.avi"


def lerp_blend(current: torch.Tensor, warped: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return torch.lerp(current, warped, weight.to(current.dtype))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--runs", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    frames = []
    with av.open(str(CLIP)) as c:
        for f in c.decode(video=0):
            x = torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1)[None].float() / 255
            frames.append(x.contiguous(memory_format=torch.channels_last))
            if len(frames) > args.frames:
                break
    lrs = [F.interpolate(x, scale_factor=0.25, mode="area").contiguous() for x in frames]

    def run() -> float:
        ts = TemporalSmoother(0.5)
        ts(lrs[0], frames[0], [True])
        start = time.perf_counter()
        for k in range(1, len(frames)):
            ts(lrs[k], frames[k], [False])
        return (time.perf_counter() - start) / (len(frames) - 1) * 1000

    times: dict[str, list[float]] = {"lerp": [], "blend": []}
    for _ in range(args.runs):
        for name, fn in (("lerp", lerp_blend), ("blend", blend)):
            pt.blend = fn
            times[name].append(run())
    pt.blend = blend
    for name, v in times.items():
        print(f"{name:6s} best {min(v):.2f} ms/frame  median {sorted(v)[len(v) // 2]:.2f}")


if __name__ == "__main__":
    main()
