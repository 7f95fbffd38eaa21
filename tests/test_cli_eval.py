"""`vsr eval`: reports on stdout and in files, one-line errors with the right exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vsr.cli import app

runner = CliRunner()


def _checkpoint(shared_data: Path) -> Path:
    path = shared_data / "weights" / "realesr-animevideov3.pth"
    if not path.is_file():
        pytest.skip(f"{path} not found (see ../shared/data/MANIFEST.md)")
    return path


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    return lines[0]


def _images(folder: Path, count: int = 1, size: tuple[int, int] = (48, 40)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    return folder


def test_json_on_set5_x4(set5: Path) -> None:
    result = runner.invoke(app, ["eval", str(set5), "--scale", "4", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["name"] for r in data["images"]] == [
        "baby.png",
        "bird.png",
        "butterfly.png",
        "head.png",
        "woman.png",
    ]
    assert data["model"] == "bicubic" and data["scale"] == 4
    assert data["mean"]["psnr_y"] == pytest.approx(28.42, abs=0.02)
    assert data["mean"]["psnr_y"] == pytest.approx(np.mean([r["psnr_y"] for r in data["images"]]))
    # the summary line is kept off stdout so the JSON parses
    assert "bicubic x4 on 5 images: PSNR-Y 28.42 dB" in result.stderr


def test_markdown_table_and_mean_line(tmp_path: Path) -> None:
    folder = _images(tmp_path / "imgs", count=2)
    result = runner.invoke(app, ["eval", str(folder), "-s", "2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| image | size | PSNR-Y (dB)")
    assert [line.split(" | ")[0] for line in lines[2:4]] == ["| im0.png", "| im1.png"]
    assert lines[4].startswith("| **mean** |")
    assert lines[5].startswith("bicubic x2 on 2 images: PSNR-Y ")


def test_out_file_format_follows_its_suffix(tmp_path: Path) -> None:
    folder = _images(tmp_path / "imgs", count=3)
    out = tmp_path / "report.csv"
    result = runner.invoke(app, ["eval", str(folder), "-s", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(out.open()))
    assert [r[0] for r in rows] == ["image", "im0.png", "im1.png", "im2.png", "mean"]
    assert rows[1][1:3] == ["40", "48"]  # width, height
    # the terminal still shows the table, with the same mean as the file
    assert f"PSNR-Y {float(rows[-1][3]):.2f} dB" in result.stdout.splitlines()[-1]


def test_checkpoint_scale_comes_from_the_model(shared_data: Path, tmp_path: Path) -> None:
    folder = _images(tmp_path / "imgs", size=(64, 56))
    result = runner.invoke(app, ["eval", str(folder), "-m", str(_checkpoint(shared_data)), "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "realesr-animevideov3.pth" and data["scale"] == 4
    assert data["images"][0]["width"] == 56 and 5.0 < data["images"][0]["psnr_y"] < 40.0


@pytest.mark.parametrize(
    ("setup", "args", "code", "message"),
    [
        ("none", ["-s", "2"], 1, "does not exist"),
        ("empty", ["-s", "2"], 1, "no PNG, BMP or TIFF images"),
        ("unreadable", ["-s", "2"], 1, "cannot read image"),
        ("tiny", ["-s", "4"], 1, "is 16x16, too small to score at x4: it needs 20 pixels a side"),
        ("images", ["-s", "2", "-m", "no-such-model"], 1, "unknown model 'no-such-model'"),
        ("images", ["-s", "2", "-f", "xml"], 2, "unknown format 'xml'"),
        ("images", ["-s", "2", "-m", "bicubic", "-m", "lanczos"], 2, "-m takes one model per run, got 2"),
        ("images", [], 2, "bicubic baseline needs a scale"),
        ("images", ["-s", "0"], 2, "scale must be 1 or more"),
        ("images", ["-s", "2", "--precision", "fp16", "--device", "cpu", "-m", "lanczos"], 1, "fp16"),
    ],
)
def test_errors_are_one_line_with_exit_codes(
    tmp_path: Path, setup: str, args: list[str], code: int, message: str
) -> None:
    folder = tmp_path / "imgs"
    if setup == "empty":
        folder.mkdir()
        (folder / "notes.txt").write_text("no images here")
    elif setup == "unreadable":
        _images(folder)
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    elif setup == "tiny":
        _images(folder, size=(16, 16))
    elif setup == "images":
        _images(folder)
    result = runner.invoke(app, ["eval", str(folder), *args])
    assert result.exit_code == code, result.output
    line = _one_line_error(result.stderr)
    assert line.startswith("vsr: error: ") and message in line


def test_checkpoint_scale_mismatch_is_one_line(shared_data: Path, tmp_path: Path) -> None:
    folder = _images(tmp_path / "imgs")
    result = runner.invoke(app, ["eval", str(folder), "-m", str(_checkpoint(shared_data)), "-s", "2"])
    assert result.exit_code == 1
    assert "is a x4 model but scale 2 was asked" in _one_line_error(result.stderr)
