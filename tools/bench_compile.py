"""torch.compile builds against eager runs, as the torch backend and the denoise pre-pass run them.

    OMP_NUM_THREADS=2 python tools/bench_compile.py [--size 640x360] [--runs 5] [--precision bf16]
        [--models fast-x2,fast-x4,denoise,../shared/data/weights/realesr-animevideov3.pth]

For each model: milliseconds per frame eager (the backend's default path: on the CPU in bf16 with
its PReLU rewrite) and through its torch.compile build (`vsr.backends.compiled`), the seconds the
build took (on the first call; a later process finds inductor's on-disk cache and builds faster),
the largest difference between the two outputs, and each one's mean error against the model run
in fp32. Best of three rounds of --runs calls after a
warm-up; the denoiser runs at sigma 15.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from bench_prelu import best_ms  # tools/ is the script's folder, so on sys.path

from vsr.backends import BackendOptions, create_backend
from vsr.models import load_model
from vsr.pipeline.denoise_pass import DenoisePass


def runners(
    name: str, precision: str, compile: bool
) -> tuple[Callable[[torch.Tensor], torch.Tensor], object]:
    model = load_model(name)
    cpu = torch.device("cpu")
    if model.descriptor.task == "denoise":
        stage = DenoisePass(model, device=cpu, precision=precision, sigma=15.0, compile=compile)  # type: ignore[arg-type]
        return (lambda x: stage(x, [False] * x.shape[0])), stage.compiled
    backend = create_backend("torch", model, BackendOptions(device=cpu, precision=precision, compile=compile))  # type: ignore[arg-type]
    return backend.run, backend.compiled  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument(
        "--models", default="fast-x2,fast-x4,denoise,../shared/data/weights/realesr-animevideov3.pth"
    )
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, {args.precision}, cpu, {w}x{h}")
    print(
        f"{'model':>24} {'eager ms':>9} {'compiled ms':>12} {'speed-up':>9} {'build s':>8}"
        f" {'max diff':>9} {'eager err':>10} {'compiled err':>13}"
    )
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    for name in args.models.split(","):
        eager, _ = runners(name, args.precision, compile=False)
        built, compiled = runners(name, args.precision, compile=True)
        exact, _ = runners(name, "fp32", compile=False)
        with torch.inference_mode():
            reference = eager(x)
            output = built(x)  # the build
            fp32 = exact(x)
        eager_ms = best_ms(lambda e=eager: e(x), args.runs)
        built_ms = best_ms(lambda b=built: b(x), args.runs)
        diff = (reference - output).abs().max().item()
        errors = [(y - fp32).abs().mean().item() for y in (reference, output)]
        label = name.rsplit("/", 1)[-1]
        print(
            f"{label:>24} {eager_ms:>9} {built_ms:>12} {eager_ms / built_ms:>8.2f}x"
            f" {compiled.build_seconds:>8.1f} {diff:>9.5f} {errors[0]:>10.2e} {errors[1]:>13.2e}"  # type: ignore[attr-defined]
        )


if __name__ == "__main__":
    main()
