"""Still-frame reuse: only on frames equal to the reference, never across a real change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

import vsr
from vsr.cli import app
from vsr.pipeline.temporal import STILL_THRESHOLD, StillFrames

from streams import decoded, frames_of, rgb_of, stage, texture, u8, write_lossless

FAST = dict(preset="ultrafast", precision="fp32")


def _t(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


def test_only_frames_equal_to_the_reference_are_still() -> None:
    base = u8(texture(32, 48, seed=1))
    patch = base.copy()
    patch[10:13, 20:23] += 12  # a 3x3 change of 12 levels in an otherwise equal frame
    pixel = base.copy()
    pixel[5, 40, 1] += 8  # one pixel of one channel, 8 levels
    still = StillFrames()
    flags = still.update(_t([base, base, patch, patch, pixel, base]))
    assert flags == [False, True, False, True, False, False]
    assert still.reused == 2


def test_a_slow_drift_ends_the_reuse_instead_of_freezing_the_picture() -> None:
    base = texture(32, 48, seed=2)
    step = 0.6 * STILL_THRESHOLD * 255  # each frame is within the threshold of the one before
    frames = [u8(base + k * step) for k in range(5)]
    flags = StillFrames().update(_t(frames))
    # frame 1 and 2 are close to frame 0, frame 3 is not: it runs and becomes the reference
    assert flags[0] is False and flags[1] is True and False in flags[2:4]


def test_reused_output_is_the_models_output_for_that_frame() -> None:
    a, b = u8(texture(32, 48, seed=3)), u8(texture(32, 48, seed=4))
    b_changed = b.copy()
    b_changed[30:, :2] = 255 - b_changed[30:, :2]  # a small corner region changes
    clip = frames_of([a, a, b, b, b_changed, a, a])
    expected = rgb_of(stage((48, 32))(clip))
    for batch in (1, 3):
        reusing = stage((48, 32), reuse_still=True)
        out = [f for i in range(0, len(clip), batch) for f in reusing(clip[i : i + batch])]
        assert reusing.frames_reused == 3
        assert [f.pts for f in out] == [f.pts for f in clip]
        assert all(np.array_equal(x, y) for x, y in zip(rgb_of(out), expected, strict=True))
    # the changed corner was not reused: its output differs from the frame before it
    assert not np.array_equal(expected[4], expected[3])


def test_pipeline_counts_reused_frames_and_keeps_every_frame_and_pts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    scenes = [
        (u8(texture(48, 64, seed=s)[..., 0]), rng.integers(60, 200, (24, 32), dtype=np.uint8)) for s in (5, 6)
    ]
    order = [0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1]  # 8 repeats of the frame before, 4 changes
    src = write_lossless(tmp_path / "dup.mp4", [(scenes[k][0], scenes[k][1], scenes[k][1]) for k in order])
    every = vsr.upscale(src, tmp_path / "every.mkv", model="bicubic", scale=2, crf=0, **FAST)
    reused = vsr.upscale(
        src, tmp_path / "reused.mkv", model="bicubic", scale=2, crf=0, reuse_still=True, **FAST
    )
    assert every.frames_reused == 0 and reused.frames_reused == 8 and reused.frames_out == 12
    model_every = next(s for s in every.restore_steps if s.name == "model")
    model_reused = next(s for s in reused.restore_steps if s.name == "model")
    assert model_every.frames == 12 and model_reused.frames == 4
    a, b = decoded(tmp_path / "every.mkv"), decoded(tmp_path / "reused.mkv")
    assert [t for t, _ in a] == [t for t, _ in b] == [t for t, _ in decoded(src)]
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b, strict=True))


def test_cli_flag_and_json_report(tmp_path: Path) -> None:
    y = u8(texture(48, 64, seed=8)[..., 1])
    c = np.full((24, 32), 128, np.uint8)
    src = write_lossless(tmp_path / "still.mp4", [(y, c, c)] * 6)
    runner = CliRunner()
    summary = tmp_path / "s.json"
    args = ["upscale", str(src), str(tmp_path / "o.mp4"), "-m", "bicubic", "--preset", "ultrafast"]
    result = runner.invoke(app, [*args, "--reuse-still", "--json", str(summary)])
    assert result.exit_code == 0, result.stderr
    assert json.loads(summary.read_text())["frames_reused"] == 5
    assert "still-frame reuse: 5 of 6 frames took the previous output (83.3%)" in result.stderr
    result = runner.invoke(app, [*args, "--no-reuse-still", "--json", str(summary), "-y"])
    assert result.exit_code == 0 and json.loads(summary.read_text())["frames_reused"] == 0
    # a file runs every frame unless asked (live inputs reuse by default: tests/test_live.py)
    result = runner.invoke(app, [*args, "--json", str(summary), "-y"])
    assert result.exit_code == 0 and json.loads(summary.read_text())["frames_reused"] == 0
    assert "still-frame reuse" not in result.stderr
