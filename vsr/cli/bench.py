"""`vsr bench [INPUT] [--synthetic 1080p]`: stage fps, end-to-end fps, efficiency, GPU readings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsr.cli.errors import reports_errors
from vsr.cli.reports import check_report_path, write_json
from vsr.errors import ConfigError, InputError
from vsr.pipeline.bench import run_bench
from vsr.pipeline.bench_plot import write_plot
from vsr.pipeline.bench_source import parse_synthetic
from vsr.pipeline.options import load_options

__all__ = ["bench_command"]

Opt = typer.Option


@reports_errors
def bench_command(
    input: Annotated[
        str | None, typer.Argument(help="Input video; omit with --synthetic.", show_default=False)
    ] = None,
    synthetic: Annotated[
        str | None, Opt(help="Generate moving frames instead of a file: 1080p, 720p, 480p, 2160p or WxH.")
    ] = None,
    frames: Annotated[
        int | None, Opt(help="Frames to time (synthetic: frames generated). [default: 60 / the whole file]")
    ] = None,
    stage_frames: Annotated[int, Opt(help="Frames for the restore and encode stage timings.")] = 30,
    model: Annotated[str | None, Opt("--model", "-m", help="As for vsr upscale. [default: auto]")] = None,
    scale: Annotated[int | None, Opt("--scale", "-s", help="Output scale. [default: the model's]")] = None,
    device: Annotated[str | None, Opt(help="auto, cpu, cuda or cuda:N. [default: auto]")] = None,
    precision: Annotated[str | None, Opt(help="auto, fp32, fp16 or bf16. [default: auto]")] = None,
    backend: Annotated[
        str | None,
        Opt(help="As for vsr upscale: auto, torch, tensorrt, tensorrt-rtx or onnxruntime. [default: auto]"),
    ] = None,
    cuda_graph: Annotated[
        bool | None, Opt("--cuda-graph/--no-cuda-graph", help="As for vsr upscale. [default: off]")
    ] = None,
    compile: Annotated[
        bool | None, Opt("--compile/--no-compile", help="As for vsr upscale. [default: as there]")
    ] = None,
    batch: Annotated[int | None, Opt(help="Frames per model call. [default: 1]")] = None,
    codec: Annotated[str | None, Opt(help="Encoder. [default: libx264]")] = None,
    preset: Annotated[str | None, Opt(help="Encoder preset.")] = None,
    encoders: Annotated[
        int | None, Opt("--encoders", help="As for vsr upscale: encoders on GOP chunks. [default: 1]")
    ] = None,
    json_path: Annotated[
        str | None, Opt("--json", help="Write the results as JSON ('-' for stdout).")
    ] = None,
    plot: Annotated[str | None, Opt(help="Write a per-stage fps bar chart (PNG).")] = None,
) -> None:
    """Time each stage alone, then a real run to a temporary file (deleted), and compare."""
    size = parse_synthetic(synthetic) if synthetic is not None else None
    if input is not None and not Path(input).exists():
        raise InputError(f"input not found: {input}")
    check_report_path(json_path, "--json")
    check_report_path(plot, "--plot")
    if plot is not None and Path(plot).suffix.lower() != ".png":
        raise ConfigError(f"--plot draws a PNG: give a name ending in .png, got {plot}")
    options = load_options(
        model=model, scale=scale, device=device, precision=precision, backend=backend, batch=batch,
        cuda_graph=cuda_graph, compile=compile, codec=codec, preset=preset, encoder_instances=encoders,
    )  # fmt: skip
    result = run_bench(options, input_path=input, synthetic=size, frames=frames, stage_frames=stage_frames)
    for line in result.table():
        typer.echo(line)
    if json_path is not None:
        write_json(json_path, result.to_dict())
    if plot is not None:
        write_plot(plot, result.stage_fps(), result.end_to_end_fps, f"{result.input} -> {result.model}")
