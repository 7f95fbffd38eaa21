"""Whole frames against uniform windows (`vsr.ops.tiling.run_tiled`) for the model alone, on the CPU.

    python tools/bench_windows.py [--models fast-x2,fast-x4] [--sizes 640x360,768x576,1280x720]
                                  [--tiles 0,128,192,256,384] [--threads 1] [--compile] [--repeats 4]

Each row: one model, one input size, one tile size (0: the whole frame in one call), the best of
--repeats calls after two warm-up calls, ms per frame, and the largest difference from the whole
frame's output (0 is expected: the windows carry the model's receptive radius of context). The
model runs as `vsr upscale` runs it on this CPU: the torch backend, bf16 autocast, channels_last
(and with --compile, the torch.compile builds). Why: a 16-channel network's feature maps at 720p are
tens of MB per layer, far past the cores' caches, so each layer streams them from memory; a
256-pixel window's fit.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vsr.backends import BackendOptions, create_backend
from vsr.models import load_model
from vsr.ops.tiling import run_tiled


def best_ms(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="fast-x2,fast-x4")
    parser.add_argument("--sizes", default="640x360,768x576,1280x720")
    parser.add_argument("--tiles", default="0,128,192,256,384")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{args.threads} thread(s), {args.precision}, {'compiled' if args.compile else 'eager'}")
    print(f"{'model':<10}{'size':>10}{'tile':>6}{'ms/frame':>10}{'vs whole':>9}{'max diff':>10}")
    for name in args.models.split(","):
        model = load_model(name)
        d = model.descriptor
        options = BackendOptions(device=torch.device("cpu"), precision=args.precision, compile=args.compile)
        backend = create_backend("torch", model, options)
        for size in args.sizes.split(","):
            w, h = map(int, size.split("x"))
            x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
            with torch.inference_mode():
                whole = backend.run(x).float()
                whole_ms = None
                for tile in map(int, args.tiles.split(",")):

                    def call(tile: int = tile, x: torch.Tensor = x, run=backend.run, d=d) -> torch.Tensor:  # type: ignore[no-untyped-def]
                        return run_tiled(
                            run,
                            x,
                            scale=d.scale,
                            tile=tile,
                            overlap=d.receptive_radius,
                            multiple=d.size_multiple,
                        )

                    ms = best_ms(call, args.repeats)
                    whole_ms = ms if tile == 0 else whole_ms
                    diff = float((call().float() - whole).abs().max())
                    rows.append(
                        {"model": name, "size": size, "tile": tile, "ms": round(ms, 1), "max_diff": diff}
                    )
                    ratio = f"{whole_ms / ms:.2f}x" if whole_ms else "-"
                    print(f"{name:<10}{size:>10}{tile:>6}{ms:>10.1f}{ratio:>9}{diff:>10.4f}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
