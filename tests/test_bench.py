"""`vsr bench`: stage and end-to-end fps on a tiny synthetic source, its JSON, its plot, its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from vsr.cli import app
from vsr.pipeline.bench_gpu import GpuSampler
from vsr.pipeline.bench_plot import PLOT_WIDTH, plot_height
from vsr.pipeline.bench_source import parse_synthetic

STAGES = ["decode", "upload", "model", "download", "encode"]
ARGS = ["bench", "--synthetic", "64x48", "--frames", "6", "-m", "bicubic", "-s", "2", "--precision", "fp32"]


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, Path]:
    tmp = tmp_path_factory.mktemp("bench")
    out_json, plot = tmp / "bench.json", tmp / "bench.png"
    args = [*ARGS, "--preset", "ultrafast", "--json", str(out_json), "--plot", str(plot)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output, json.loads(out_json.read_text()), plot


def test_every_stage_has_a_positive_fps_and_counts_every_frame(bench_run: tuple[str, dict, Path]) -> None:
    _, data, _ = bench_run
    assert list(data["stages"]) == STAGES
    for name, stage in data["stages"].items():
        assert stage["fps"] > 0, name
        assert stage["frames"] == 6, name
    assert data["frames"] == 6
    assert data["input_size"] == [64, 48] and data["output_size"] == [128, 96]
    assert data["end_to_end_fps"] > 0


def test_efficiency_is_end_to_end_over_the_slowest_stage(bench_run: tuple[str, dict, Path]) -> None:
    _, data, _ = bench_run
    fps = {name: s["fps"] for name, s in data["stages"].items()}
    steps = ("upload", "model", "download")
    restore_s = sum(data["stages"][k]["seconds"] for k in steps)
    assert data["restore_fps"] == pytest.approx(data["stages"]["model"]["frames"] / restore_s, rel=1e-3)
    threads = {"decode": fps["decode"], "restore": data["restore_fps"], "encode": fps["encode"]}
    assert data["efficiency"] == pytest.approx(data["end_to_end_fps"] / min(threads.values()), abs=1e-3)
    slowest = min(threads, key=lambda k: threads[k])
    inner = min(steps, key=lambda k: fps[k])
    assert data["bottleneck"] == (f"restore ({inner})" if slowest == "restore" else slowest)
    assert isinstance(data["efficiency"], float) and data["efficiency"] > 0


def test_json_fields_are_numbers(bench_run: tuple[str, dict, Path]) -> None:
    _, data, _ = bench_run
    for key in ("frames", "end_to_end_fps", "efficiency", "batch"):
        assert isinstance(data[key], int | float) and not isinstance(data[key], bool), key
    assert set(data["pipeline_stage_fps"]) == {"decode", "restore", "encode"}
    assert all(isinstance(v, float) and v > 0 for v in data["pipeline_stage_fps"].values())
    assert data["device"] == "cpu" and data["gpu"] is None


def test_table_and_gpu_note_on_a_machine_without_a_gpu(bench_run: tuple[str, dict, Path]) -> None:
    output, data, _ = bench_run
    assert "efficiency (end-to-end / slowest of decode, restore, encode)" in output
    assert any(line.startswith("decode ") for line in output.splitlines())
    notes = [n for n in data["notes"] if n.startswith("GPU metrics")]
    assert notes == ["GPU metrics: not sampled, the run used cpu, not a CUDA GPU"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the note where no GPU driver is present")
def test_nvml_missing_is_one_note_not_an_error() -> None:
    with GpuSampler(torch.device("cuda:0")) as sampler:
        pass
    assert sampler.report() is None
    assert sampler.note is not None and sampler.note.startswith("GPU metrics: not sampled, NVML")
    assert "\n" not in sampler.note


def test_plot_has_the_expected_size_and_is_not_blank(bench_run: tuple[str, dict, Path]) -> None:
    _, _, plot = bench_run
    image = np.asarray(Image.open(plot).convert("RGB"))
    assert image.shape == (plot_height(len(STAGES) + 1), PLOT_WIDTH, 3)
    # the slowest stage's red bar and the green end-to-end bar are both drawn
    assert np.any(np.all(image == (200, 70, 60), axis=-1))
    assert np.any(np.all(image == (60, 150, 90), axis=-1))
    assert (image != 255).any(axis=-1).mean() > 0.02


@pytest.mark.parametrize("value", ["huge", "63x48", "0x0", "1080"])
def test_bad_synthetic_value_is_one_line_exit_2(value: str) -> None:
    result = CliRunner().invoke(app, ["bench", "--synthetic", value, "-m", "bicubic"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--synthetic" in lines[0], result.output


def test_named_sizes() -> None:
    assert parse_synthetic("1080p") == (1920, 1080)
    assert parse_synthetic("720P") == (1280, 720)
    assert parse_synthetic("640x360") == (640, 360)


def test_file_and_synthetic_together_is_a_usage_error(tmp_path: Path) -> None:
    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"")
    result = CliRunner().invoke(app, ["bench", str(clip), "--synthetic", "64x48", "-m", "bicubic"])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1


def test_a_run_faster_than_its_slowest_stage_is_flagged() -> None:
    import dataclasses

    from vsr.pipeline import bench
    from vsr.pipeline.options import load_options

    result = bench.run_bench(
        load_options(None, model="bicubic", scale=2, precision="fp32", preset="ultrafast"),
        synthetic=(64, 48),
        frames=4,
        stage_frames=4,
    )
    warning = "warning: the run outpaced its slowest stage timed alone"
    assert not [line for line in result.table() if line.startswith(warning)] or result.efficiency > 1.1
    disturbed = dataclasses.replace(result, efficiency=119.5)  # what a busy machine printed
    assert [line for line in disturbed.table() if line.startswith(warning)] == [
        f"{warning} ({result.bottleneck}): that timing was disturbed (other work on the machine?); run the bench again"
    ]
