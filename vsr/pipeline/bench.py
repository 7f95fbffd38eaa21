"""`vsr bench`: each stage's standalone fps, the end-to-end fps of a real run, and their ratio.

Each stage is first timed alone, with the machine to itself: decode (demux + decode of the first
``frames``), upload+colour, model and download (the Restore stage's own clocks over the first
``stage_frames`` frames, after one warm-up batch, GPU-synchronised), and encode (those restored
frames through the encoder and muxer). Then the real pipeline runs the input into a temporary file
that is deleted afterwards. Efficiency = end-to-end fps / the slowest thread's standalone fps (decode,
restore = upload + model + download in one thread, encode): 1.0 means the threads overlap
perfectly; the slowest one (and inside restore, its slowest step) is the bottleneck.
"""

from __future__ import annotations

import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from vsr.errors import ConfigError
from vsr.media import FileSink, FileSource, Frame
from vsr.pipeline.bench_gpu import GpuReport, GpuSampler
from vsr.pipeline.bench_source import write_synthetic_clip
from vsr.pipeline.options import UpscaleOptions
from vsr.pipeline.plan import make_plan
from vsr.pipeline.restore import RestoreStage
from vsr.pipeline.runner import Pipeline
from vsr.pipeline.stats import StageClock

__all__ = ["BenchResult", "StageSpeed", "run_bench"]


# end-to-end over the slowest stage alone: at most 1, plus timing noise
_MOST_EFFICIENT = 1.1


@dataclass(frozen=True)
class StageSpeed:
    name: str
    frames: int
    seconds: float
    fps: float


@dataclass(frozen=True, kw_only=True)
class BenchResult:
    input: str  # the file, or "synthetic WxH"
    frames: int  # frames the end-to-end run wrote
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    model: str
    backend: str
    device: str
    precision: str
    batch: int
    encoder: str
    stages: list[StageSpeed]  # standalone: decode, upload, model, download, encode (+ optional steps)
    end_to_end_fps: float
    restore_fps: float  # upload + model + download, which share the Restore thread
    efficiency: float  # end-to-end fps / the slowest thread's (decode, restore, encode) standalone fps
    bottleneck: str  # that thread, and inside restore its slowest step
    pipeline_stage_fps: dict[str, float]  # the three threads of the real run
    gpu: GpuReport | None
    machine: str
    torch_version: str
    notes: list[str] = field(default_factory=list)

    def stage_fps(self) -> dict[str, float]:
        return {s.name: s.fps for s in self.stages}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = {
            s.name: {"frames": s.frames, "seconds": s.seconds, "fps": s.fps} for s in self.stages
        }
        return data

    def table(self) -> list[str]:
        (iw, ih), (ow, oh) = self.input_size, self.output_size
        lines = [
            f"{self.input}: {self.frames} frames {iw}x{ih} -> {ow}x{oh}, model {self.model}",
            f"{self.backend} on {self.device} ({self.precision}), batch {self.batch}, encoder {self.encoder}",
            f"{'stage':<12}{'frames':>8}{'fps':>12}",
        ]
        for s in self.stages:
            if s.name == "upload":
                lines.append(f"{'restore':<12}{s.frames:>8}{self.restore_fps:>12.2f}")
            indent = "  " if s.name in ("upload", "model", "download") else ""
            lines.append(f"{indent + s.name:<12}{s.frames:>8}{s.fps:>12.2f}")
        lines.append(f"{'end-to-end':<12}{self.frames:>8}{self.end_to_end_fps:>12.2f}")
        lines.append(
            f"efficiency (end-to-end / slowest of decode, restore, encode): {self.efficiency:.3f}; "
            f"bottleneck: {self.bottleneck}"
        )
        if self.efficiency > _MOST_EFFICIENT:
            # a pipeline cannot outrun its slowest stage: that stage's timing was disturbed
            lines.append(
                f"warning: the run outpaced its slowest stage timed alone ({self.bottleneck}): that timing "
                "was disturbed (other work on the machine?); run the bench again"
            )
        if self.gpu is not None:
            g = self.gpu
            lines.append(
                f"GPU {g.name}: utilisation {g.utilization_mean_pct:.0f}% mean / {g.utilization_max_pct:.0f}% max, "
                f"memory {g.memory_used_max_mib:.0f}/{g.memory_total_mib:.0f} MiB, power {g.power_mean_w:.0f} W mean / "
                f"{g.power_max_w:.0f} W max, clocks SM {g.sm_clock_mean_mhz:.0f} MHz, memory {g.memory_clock_mean_mhz:.0f} MHz"
            )
        lines += [f"note: {n}" for n in self.notes]
        return lines


def _speed(name: str, frames: int, seconds: float) -> StageSpeed:
    return StageSpeed(name, frames, round(seconds, 4), round(frames / seconds, 3) if seconds > 0 else 0.0)


def _decode(clip: Path, options: UpscaleOptions, limit: int | None) -> tuple[StageSpeed, list[Frame]]:
    frames: list[Frame] = []
    with FileSource(clip, deinterlace=options.deinterlace) as source:
        started = time.perf_counter()
        for item in source.items():
            if isinstance(item, Frame):
                # a private copy of the planes: the decoder's buffers are not ours to keep
                frames.append(replace(item, planes=tuple(p.copy() for p in item.planes)))
                if limit is not None and len(frames) >= limit:
                    break
        elapsed = time.perf_counter() - started
    if not frames:
        raise ConfigError(f"{clip} has no video frames to benchmark")
    return _speed("decode", len(frames), elapsed), frames


WARMUP_BATCHES = 3


def _restore(stage: RestoreStage, sample: list[Frame], batch: int) -> tuple[list[StageSpeed], list[Frame]]:
    # warm-up: oneDNN/cuDNN pick kernels on the first call, and allocators settle over a few more
    for _ in range(WARMUP_BATCHES):
        stage(sample[:batch])
    stage.clocks = {name: StageClock(name) for name in stage.clocks}  # forget the warm-up's time
    restored: list[Frame] = []
    for i in range(0, len(sample), batch):
        restored += stage(sample[i : i + batch])
    return [_speed(c.name, c.frames, c.busy_s) for c in stage.clocks.values()], restored


def _encode(path: Path, stage_output: list[Frame], spec: Any) -> StageSpeed:
    with FileSink(path, spec) as sink:
        started = time.perf_counter()
        for frame in stage_output:
            sink.write_frame(frame)
        sink.close()
        return _speed("encode", len(stage_output), time.perf_counter() - started)


def run_bench(
    options: UpscaleOptions,
    *,
    input_path: str | Path | None = None,
    synthetic: tuple[int, int] | None = None,
    frames: int | None = None,
    stage_frames: int = 30,
) -> BenchResult:
    """Benchmark a file (``input_path``; ``frames`` limits the standalone stages, the end-to-end run
    takes the whole file) or ``frames`` synthetic frames of size ``synthetic`` (default 60)."""
    if (input_path is None) == (synthetic is None):
        raise ConfigError("give an input file or --synthetic SIZE, not both or neither")
    if frames is not None and frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {frames}")
    if stage_frames < 1:
        raise ConfigError(f"--stage-frames must be at least 1, got {stage_frames}")
    options = replace(options, overwrite=True)
    with tempfile.TemporaryDirectory(prefix="vsr-bench-") as tmp:
        if synthetic is not None:
            count = frames or 60
            clip = write_synthetic_clip(Path(tmp) / "synthetic.mp4", *synthetic, count)
            label = f"synthetic {synthetic[0]}x{synthetic[1]}"
        else:
            clip, label = Path(input_path), str(input_path)  # type: ignore[arg-type]
        decode, decoded = _decode(clip, options, frames)
        with FileSource(clip) as source:
            info = source.info
        plan = make_plan(info, options)
        stage = plan.restore_stage()
        steps, restored = _restore(stage, decoded[:stage_frames], plan.batch)
        del decoded, stage  # free the frames and the model before the real run loads its own
        encode = _encode(Path(tmp) / "encode_only.mp4", restored, plan.output)
        del restored
        with GpuSampler(plan.device) as sampler:
            summary = Pipeline(clip, Path(tmp) / "end_to_end.mp4", options).run()
    stages = [decode, *steps, encode]
    # Upload, model and download run one after another in the Restore thread, so what bounds the
    # pipeline is the slowest thread: decode, the three restore steps together, or encode.
    restore = _speed("restore", steps[0].frames, sum(s.seconds for s in steps))
    slowest = min((decode, restore, encode), key=lambda s: s.fps)
    inner = min(steps, key=lambda s: s.fps).name
    bottleneck = f"restore ({inner})" if slowest is restore else slowest.name
    notes = list(plan.notes) + ([sampler.note] if sampler.note else [])
    if input_path is not None and frames is not None:
        notes.append(
            f"--frames {frames} limits the standalone stages; the end-to-end run took the whole file"
        )
    return BenchResult(
        input=label,
        frames=summary.frames_out,
        input_size=summary.input_size,
        output_size=summary.output_size,
        model=summary.model,
        backend=summary.backend,
        device=summary.device,
        precision=summary.precision,
        batch=plan.batch,
        encoder=f"{plan.output.codec} preset={plan.output.preset or 'default'}",
        stages=stages,
        end_to_end_fps=summary.fps,
        restore_fps=restore.fps,
        efficiency=round(summary.fps / slowest.fps, 4) if slowest.fps > 0 else 0.0,
        bottleneck=bottleneck,
        pipeline_stage_fps={s.name: s.fps for s in summary.stages},
        gpu=sampler.report(),
        machine=f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        torch_version=torch.__version__,
        notes=notes,
    )
