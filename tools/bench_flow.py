"""Cost and photometric quality of the dense flows: OpenCV DIS (fast, medium) against `TorchFlow`.

    python tools/bench_flow.py [--clip vtest.avi] [--pairs 4] [--runs 5] [--sizes 192x144,384x288,640x360]

Consecutive frame pairs of the clip (grey, shrunk with cv2.resize INTER_AREA to each size) are
given to each estimator: DIS on the uint8 frames it takes, `TorchFlow` (default settings) on float
tensors already on its device, the CPU with the current thread count (OpenCV is set to the same
count) and CUDA when there is one. Printed per size and estimator: the median ms per pair over
--runs timed passes after a warm-up pass, and the photometric error, mean |current -
warp(previous, flow)| in grey levels (0..255) over the pairs, next to its ratio to the error of
zero flow. Timings on a shared machine are indicative only.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from vsr.ops.flow import DisFlow
from vsr.ops.temporal import warp
from vsr.ops.torch_flow import TorchFlow

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def grey_frames(clip: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of ``clip`` as uint8 grey (the luma plane)."""
    frames: list[np.ndarray] = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="gray"))
            if len(frames) == count:
                break
    if len(frames) < count:
        raise SystemExit(f"{clip} has {len(frames)} frames, {count} needed")
    return frames


def photometric(current: torch.Tensor, previous: torch.Tensor, flow: torch.Tensor) -> float:
    """Mean |current - warp(previous, flow)| in grey levels."""
    return float((current - warp(previous, flow)).abs().mean()) * 255.0


def bench(
    estimate: Callable[[int], torch.Tensor],
    pairs: int,
    runs: int,
    sync: Callable[[], None],
) -> tuple[float, list[torch.Tensor]]:
    """Median ms per pair over ``runs`` passes (after one warm-up pass) and the flows of the last."""
    flows = [estimate(i) for i in range(pairs)]  # warm-up: buffers, kernels, caches
    sync()
    times: list[float] = []
    for _ in range(runs):
        flows = []
        for i in range(pairs):
            start = time.perf_counter()
            flows.append(estimate(i))
            sync()
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, flows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="vtest.avi", help="a file in ../shared/data/video or a path")
    parser.add_argument("--pairs", type=int, default=4, help="consecutive frame pairs from the start")
    parser.add_argument("--runs", type=int, default=5, help="timed passes over the pairs")
    parser.add_argument("--sizes", default="192x144,384x288,640x360", help="comma-separated WxH")
    args = parser.parse_args()
    clip = Path(args.clip) if Path(args.clip).exists() else SHARED / "video" / args.clip
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]

    threads = torch.get_num_threads()
    cv2.setNumThreads(threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"torch {torch.__version__}, {threads} CPU thread(s); OpenCV {cv2.__version__}, "
        f"{cv2.getNumThreads()} thread(s); CUDA: "
        + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
    )
    print(f"clip {clip.name}, {args.pairs} consecutive pairs, median of {args.runs} runs after a warm-up")
    print(f"{'size':>9}  {'estimator':<18} {'ms/pair':>8}  {'error':>6}  {'vs zero':>7}")

    raw = grey_frames(clip, args.pairs + 1)
    for width, height in sizes:
        grey = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in raw]
        host = [torch.from_numpy(f).float().div_(255.0)[None, None] for f in grey]
        zero = torch.zeros(1, 2, height, width)
        zero_err = statistics.mean(photometric(host[i + 1], host[i], zero) for i in range(args.pairs))
        rows: list[tuple[str, float, float]] = []
        for preset in ("fast", "medium"):
            dis = DisFlow(preset)
            ms, flows = bench(
                lambda i, dis=dis, grey=grey: torch.from_numpy(dis(grey[i + 1], grey[i])).permute(2, 0, 1)[
                    None
                ],
                args.pairs,
                args.runs,
                lambda: None,
            )
            err = statistics.mean(photometric(host[i + 1], host[i], flows[i]) for i in range(args.pairs))
            rows.append((f"DisFlow({preset})", ms, err))
        flow = TorchFlow()
        for device in devices:
            frames = [f.to(device) for f in host]
            sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
            ms, flows = bench(
                lambda i, frames=frames, flow=flow: flow(frames[i + 1], frames[i]),
                args.pairs,
                args.runs,
                sync,
            )
            err = statistics.mean(
                photometric(host[i + 1], host[i], flows[i].cpu()) for i in range(args.pairs)
            )
            rows.append((f"TorchFlow {device.type}", ms, err))
        print(f"{f'{width}x{height}':>9}  {'zero flow':<18} {'':>8}  {zero_err:6.2f}  {1.0:7.3f}")
        for name, ms, err in rows:
            print(f"{'':>9}  {name:<18} {ms:8.2f}  {err:6.2f}  {err / zero_err:7.3f}")


if __name__ == "__main__":
    main()
