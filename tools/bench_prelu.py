"""PReLU on the CPU in bf16 channels_last: PyTorch's kernel against `vsr.backends.cpu_prelu`.

    OMP_NUM_THREADS=2 python tools/bench_prelu.py [--size 640x360] [--runs 10]

Times one PReLU of a (1, C, H, W) tensor for several channel counts: native, split (``relu(x) +
w * min(x, 0)``, the form vsr used before) and rows (`vsr.backends.cpu_prelu.prelu_rows`, the
form it uses now), and checks that each gives the same tensor bit for bit; then the shipped
fast-x2 and fast-x4 models on one HxW frame with their PReLUs native and as rows, eager and
through a torch.compile build as the backend makes it. Milliseconds per call, best of three
rounds of --runs calls after a warm-up.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from vsr.backends.compiled import CastIO, CompiledShapes
from vsr.backends.cpu_prelu import RowPReLU, use_row_prelus
from vsr.models import load_model


def best_ms(call: Callable[[], object], runs: int) -> float:
    for _ in range(2):
        call()
    rounds = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(runs):
            call()
        rounds.append((time.perf_counter() - started) / runs * 1000)
    return round(min(rounds), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    cl = torch.channels_last
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, bf16 channels_last, {w}x{h}")
    print(f"{'channels':>8} {'native ms':>10} {'split ms':>9} {'rows ms':>8} {'same bits':>10}")
    for channels in (16, 24, 32, 48, 64):
        prelu = torch.nn.PReLU(channels)
        with torch.no_grad():
            prelu.weight.uniform_(0.0, 1.5)
        prelu = prelu.to(torch.bfloat16)
        rows = RowPReLU(prelu)
        w4 = prelu.weight.view(1, -1, 1, 1)
        x = torch.randn(1, channels, h, w).to(torch.bfloat16).contiguous(memory_format=cl)
        with torch.inference_mode():
            expected = F.prelu(x, prelu.weight)
            same = torch.equal(expected, rows(x)) and torch.equal(expected, F.relu(x) + w4 * x.clamp(max=0))
            native = best_ms(lambda m=prelu, t=x: m(t), args.runs)
            split = best_ms(lambda t=x, w4=w4: F.relu(t) + w4 * t.clamp(max=0), args.runs)
            fast = best_ms(lambda m=rows, t=x: m(t), args.runs)
        print(f"{channels:>8} {native:>10} {split:>9} {fast:>8} {same!s:>10}")
    print(
        f"{'model':>8} {'native ms':>10} {'rows ms':>8} {'same bits':>10} {'compiled native':>16} {'compiled rows':>14}"
    )
    x = torch.rand(1, 3, h, w)
    xb = x.to(torch.bfloat16).contiguous(memory_format=cl)
    for name in ("fast-x2", "fast-x4"):
        native = copy.deepcopy(load_model(name).module).eval().to(dtype=torch.bfloat16, memory_format=cl)
        rows = copy.deepcopy(native)
        use_row_prelus(rows)
        built = [
            CompiledShapes(CastIO(m, torch.bfloat16, cl), name=name, memory_format=cl) for m in (native, rows)
        ]
        with torch.inference_mode():
            same = torch.equal(native(xb), rows(xb))
            a = best_ms(lambda m=native: m(xb), args.runs)
            b = best_ms(lambda m=rows: m(xb), args.runs)
            c, d = (best_ms(lambda m=m: m(x), args.runs) for m in built)
        print(f"{name:>8} {a:>10} {b:>8} {same!s:>10} {c:>16} {d:>14}")


if __name__ == "__main__":
    main()
