"""bf16 (channels_last) vs fp32 on the CPU: output PSNR and time per frame, on real frames.

    python tools/bench_precision.py [--model PATH] [--frames 2] [--size 640x360]

Frames come from the shared clips, resized to --size so the timing is comparable with the
figures in ARCHITECTURE.md. PSNR is over RGB in [0, 1] after clamping, fp32 as the reference.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import av
import numpy as np
import torch

from vsr.backends import BackendOptions, create_backend
from vsr.models import load_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CLIPS = ["bigbuckbunny.mp4", "sample_1080x720_aac.mp4", "vtest.avi", "foreman_cif.264"]


def frames(per_clip: int, width: int, height: int) -> list[torch.Tensor]:
    out = []
    for name in CLIPS:
        with av.open(str(SHARED / "video" / name)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i >= per_clip:
                    break
                rgb = frame.reformat(
                    width=width, height=height, format="rgb24", interpolation="AREA"
                ).to_ndarray()
                out.append(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255)
    return out


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(SHARED / "weights" / "realesr-animevideov3.pth"))
    parser.add_argument("--frames", type=int, default=2, help="frames per shared clip")
    parser.add_argument("--size", default="640x360")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    model = load_model(args.model)
    inputs = frames(args.frames, width, height)
    print(
        f"model {model.descriptor.summary()}, {len(inputs)} frames at {width}x{height}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    results: dict[str, list[torch.Tensor]] = {}
    for precision, channels_last in (("fp32", False), ("fp32", True), ("bf16", True)):
        backend = create_backend(
            "torch",
            model,
            BackendOptions(device=torch.device("cpu"), precision=precision, channels_last=channels_last),
        )
        backend.run(inputs[0])  # warm-up: oneDNN picks kernels on the first call
        started = time.perf_counter()
        results[f"{precision}{'-cl' if channels_last else ''}"] = outs = [backend.run(x) for x in inputs]
        ms = (time.perf_counter() - started) / len(inputs) * 1000
        print(f"{precision:5s} {'channels_last' if channels_last else 'NCHW':14s} {ms:8.1f} ms/frame")
        del outs
    ref = results["fp32"]
    for name in ("fp32-cl", "bf16-cl"):
        values = [psnr(a, b) for a, b in zip(results[name], ref, strict=True)]
        print(f"PSNR {name} vs fp32 NCHW: min {min(values):.2f} dB, mean {sum(values) / len(values):.2f} dB")


if __name__ == "__main__":
    main()
