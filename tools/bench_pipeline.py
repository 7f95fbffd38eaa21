"""End-to-end fps of `vsr upscale` against each stage's standalone fps, and the pipeline efficiency.

    python tools/bench_pipeline.py [--clip foreman_cif.264] [--model PATH] [--preset veryfast] [--json]

Each stage is first timed alone, with the whole machine to itself: decode (demux + decode of
the whole clip), restore (upload + colour + model + colour + download of the first
--stage-frames frames, after one warm-up batch) and encode (those restored frames through the
encoder and muxer). Then the real pipeline runs the whole clip. Efficiency = end-to-end fps /
slowest standalone stage fps: 1.0 means the three threads overlap perfectly.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from vsr.backends import BackendOptions, create_backend
from vsr.media import FileSink, FileSource, Frame
from vsr.pipeline.options import UpscaleOptions
from vsr.pipeline.plan import make_plan
from vsr.pipeline.restore import RestoreStage
from vsr.pipeline.runner import Pipeline

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _decode_all(clip: Path, options: UpscaleOptions) -> tuple[float, list[Frame]]:
    frames: list[Frame] = []
    with FileSource(clip, deinterlace=options.deinterlace) as source:
        started = time.perf_counter()
        for item in source.items():
            if isinstance(item, Frame):
                frames.append(item)
        elapsed = time.perf_counter() - started
    return len(frames) / elapsed, frames


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
    parser.add_argument(
        "--stage-frames", type=int, default=24, help="frames for the restore/encode stage timings"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    clip = Path(args.clip) if Path(args.clip).exists() else SHARED / "video" / args.clip
    options = UpscaleOptions(
        model=args.model, scale=args.scale, precision=args.precision, device=args.device, batch=args.batch,
        codec=args.codec, preset=args.preset, overwrite=True,
    )  # fmt: skip

    decode_fps, frames = _decode_all(clip, options)
    with FileSource(clip) as source:
        info, passthrough_count = source.info, len(source.passthrough)
    plan = make_plan(info, options)
    backend = create_backend(
        plan.backend, plan.model, BackendOptions(device=plan.device, precision=plan.precision)
    )
    stage = RestoreStage(backend, plan.model.descriptor, plan.restore, denoiser=plan.denoiser)
    sample = frames[: args.stage_frames]
    # private copies of the planes: the decoder's buffers are not ours to keep
    sample = [replace(f, planes=tuple(p.copy() for p in f.planes)) for f in sample]
    stage(sample[: args.batch])  # warm-up: oneDNN/cuDNN pick kernels on the first call
    started = time.perf_counter()
    restored = []
    for i in range(0, len(sample), args.batch):
        restored += stage(sample[i : i + args.batch])
    restore_fps = len(sample) / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as tmp:
        with FileSink(Path(tmp) / "encode_only.mp4", plan.output) as sink:
            started = time.perf_counter()
            for frame in restored:
                sink.write_frame(frame)
            sink.close()
            encode_fps = len(restored) / (time.perf_counter() - started)
        summary = Pipeline(clip, Path(tmp) / "end_to_end.mp4", options).run()

    slowest = min(decode_fps, restore_fps, encode_fps)
    results = {
        "clip": clip.name,
        "frames": summary.frames_out,
        "input_size": list(summary.input_size),
        "output_size": list(summary.output_size),
        "model": summary.model,
        "device": summary.device,
        "precision": summary.precision,
        "batch": args.batch,
        "encoder": f"{args.codec} preset={args.preset}",
        "passthrough_streams": passthrough_count,
        "standalone_fps": {"decode": decode_fps, "restore": restore_fps, "encode": encode_fps},
        "end_to_end_fps": summary.fps,
        "efficiency": summary.fps / slowest,
        "pipeline_stage_fps": {s.name: s.fps for s in summary.stages},
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
    }
    print(f"clip {clip.name}: {summary.frames_out} frames {info.width}x{info.height} -> "
          f"{summary.output_size[0]}x{summary.output_size[1]}, model {summary.model}, {summary.device} {summary.precision}, "
          f"batch {args.batch}, {args.codec} {args.preset}")  # fmt: skip
    print(f"{'stage':<12}{'standalone fps':>16}")
    for name, fps in results["standalone_fps"].items():  # type: ignore[union-attr]
        print(f"{name:<12}{fps:>16.2f}")
    print(f"{'end-to-end':<12}{summary.fps:>16.2f}")
    print(f"efficiency (end-to-end / slowest stage): {results['efficiency']:.3f}")
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
