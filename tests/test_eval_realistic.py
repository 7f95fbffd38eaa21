"""`vsr eval --degradation realistic`: seeded realistic LR inputs, gradient ratio and colour offset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vsr.cli import app
from vsr.quality import evaluate_folder, gradient_ratio, phase_pattern
from vsr.quality.evaluate import _SetTotals

runner = CliRunner()


def test_realistic_lr_is_seeded_and_harder_than_bicubic(set5: Path) -> None:
    folder = set5
    bicubic = evaluate_folder(folder, "bicubic", scale=2)
    first = evaluate_folder(folder, "bicubic", scale=2, degradation="realistic", seed=3)
    again = evaluate_folder(folder, "bicubic", scale=2, degradation="realistic", seed=3)
    other = evaluate_folder(folder, "bicubic", scale=2, degradation="realistic", seed=4)
    assert [r.psnr_y for r in first.rows] == [r.psnr_y for r in again.rows]
    assert [r.psnr_y for r in first.rows] != [r.psnr_y for r in other.rows]
    # blur, noise and two lossy codecs cost the bicubic upscale several dB over the clean protocol
    assert bicubic.mean_psnr_y == pytest.approx(33.66, abs=0.02)
    assert first.mean_psnr_y < bicubic.mean_psnr_y - 2.0
    assert first.degradation == "realistic" and first.seed == 3
    assert bicubic.degradation == "bicubic" and bicubic.seed is None
    # bicubic is softer than the truth, and more so from a blurred LR; it shifts no colour
    assert bicubic.gradient_ratio is not None and first.gradient_ratio is not None
    assert first.gradient_ratio < bicubic.gradient_ratio < 0.9
    assert bicubic.colour_offset is not None and max(abs(c) for c in bicubic.colour_offset) < 0.5


def test_cli_json_and_summary_name_the_degradation(set5: Path) -> None:
    folder = set5
    args = ["eval", str(folder), "-s", "2", "-f", "json", "--degradation", "realistic", "--seed", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["degradation"] == "realistic" and data["seed"] == 3
    assert data["protocol"].startswith("HR modcropped to the scale; LR = vsr.train.realistic")
    assert 0.3 < data["gradient_ratio"] < 0.9 and len(data["colour_offset_rgb"]) == 3
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("bicubic x2 on 5 images (realistic LR, seed 3): PSNR-Y ")
    assert f"gradient ratio {data['gradient_ratio']:.3f}" in line
    # the clean protocol's JSON keeps its protocol and names no seed
    plain = json.loads(runner.invoke(app, ["eval", str(folder), "-s", "2", "-f", "json"]).stdout)
    assert "seed" not in plain and plain["protocol"].startswith("HR modcropped to the scale; LR = MATLAB")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--degradation", "jpeg"], "--degradation must be bicubic or realistic, got 'jpeg'"),
        (["--seed", "2"], "--seed applies to --degradation realistic"),
        (["--degradation", "bicubic", "--seed", "2"], "--seed applies to --degradation realistic"),
        (["--degradation", "realistic", "--noise", "25"], "--noise evaluates a denoiser"),
    ],
)
def test_misused_options_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    result = runner.invoke(app, ["eval", str(folder), "-s", "2", *args])
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("vsr: error: ") and message in lines[0]


def test_degradation_on_a_clip_is_refused(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not read: the option is refused first")
    result = runner.invoke(app, ["eval", str(clip), "--degradation", "realistic"])
    assert result.exit_code != 0
    assert "a clip's LR takes --noise and --h264" in result.stderr and "Traceback" not in result.stderr


def _totals(outputs: list[np.ndarray], truths: list[np.ndarray]) -> _SetTotals:
    totals = _SetTotals()
    for sr, hr in zip(outputs, truths, strict=True):
        totals.add(sr, hr)
    return totals


def test_colour_offset_is_the_mean_signed_channel_difference() -> None:
    rng = np.random.default_rng(0)
    truths = [rng.integers(20, 230, (12, 10, 3), dtype=np.uint8) for _ in range(2)]
    tint = np.array([6, 0, -3])
    outputs = [(t.astype(int) + tint).astype(np.uint8) for t in truths]
    assert _totals(outputs, truths).colour_offset() == pytest.approx((6.0, 0.0, -3.0))
    # weighted by pixels, not by image: a 4-times larger image counts 4 times
    big = [np.full((24, 20, 3), 100, np.uint8), np.full((12, 10, 3), 100, np.uint8)]
    shifted = [big[0] + 5, big[1]]
    assert _totals(shifted, big).colour_offset() == pytest.approx((4.0, 4.0, 4.0))


def test_set_gradient_ratio_equals_the_sharpness_module_and_flat_truths_give_none() -> None:
    rng = np.random.default_rng(1)
    truths = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(20, 16, 3), (9, 30, 3)]]
    outputs = [(t // 2).astype(np.uint8) for t in truths]
    assert _totals(outputs, truths).gradient_ratio() == pytest.approx(
        gradient_ratio(outputs, truths), rel=1e-9
    )
    flat = [np.full((8, 8, 3), 7, np.uint8)]
    assert _totals(truths[:1], [np.full((20, 16, 3), 7, np.uint8)]).gradient_ratio() is None
    assert _totals(flat, flat).colour_offset() == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("scale", [2, 4])
def test_phase_pattern_measures_a_grid_with_the_scale_period_and_nothing_else(scale: int) -> None:
    rng = np.random.default_rng(scale)
    truth = rng.integers(20, 236, (96, 128, 3), dtype=np.uint8)
    assert phase_pattern(truth, truth, scale) == 0.0
    # a grey +-4 levels checkerboard of the scale's period: Y moves by +-4 * 219/255 everywhere
    y, x = np.indices(truth.shape[:2])
    grid = np.where((y % scale + x % scale) % 2 == 0, 4, -4)[..., None]
    gridded = (truth.astype(int) + grid).astype(np.uint8)
    assert phase_pattern(gridded, truth, scale) == pytest.approx(4 * 219 / 255, rel=1e-6)
    # noise with no period, of a larger amplitude, barely registers: its phase means average out
    noisy = np.clip(truth.astype(int) + rng.integers(-8, 9, truth.shape), 0, 255).astype(np.uint8)
    assert phase_pattern(noisy, truth, scale) < 0.25 * scale
    with pytest.raises(ValueError, match="multiple of the scale"):
        phase_pattern(truth, truth, 3)
