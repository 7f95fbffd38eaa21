"""Changed-region reuse: only the tiles near a change run, and the output is the whole frame's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vsr.cli import app
from vsr.models import load_model
from vsr.pipeline.regions import TILE, ChangedRegions, regions_for

from streams import decoded, frames_of, rgb_of, stage, texture, u8, write_lossless

SIZE = (256, 160)  # width, height: 8 x 5 tiles of 32 pixels


def _scene(frames: int, *, step: int = 3) -> list[np.ndarray]:
    """A fixed textured background with a bright 10x10 square moving ``step`` pixels right a frame."""
    background = texture(SIZE[1], SIZE[0], seed=11)
    images = []
    for t in range(frames):
        img = background.copy()
        img[36:46, 20 + step * t : 30 + step * t] = 250.0
        images.append(u8(img))
    return images


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_only_tiles_near_the_change_are_recomputed() -> None:
    images = _scene(3)
    regions = ChangedRegions((SIZE[1], SIZE[0]), radius=10)
    assert regions.plan(_t(images[0])) is None  # the first frame runs whole
    plan = regions.plan(_t(images[1]))
    assert plan is not None
    # the square (rows 36-45, columns 20-32; 8-pixel blocks 32-47 and 16-39) and 10 pixels (two
    # blocks) around it: tile rows 0-1, columns 0-1
    assert sorted(plan.tiles) == [(0, 32, 0, 32), (0, 32, 32, 64), (32, 64, 0, 32), (32, 64, 32, 64)]
    assert plan.recomputed == pytest.approx(4 * TILE * TILE / (SIZE[0] * SIZE[1]))
    # each window holds its tile and 10 pixels of context, or reaches the frame's edge
    for (wy, wx), (y0, y1, x0, x1) in zip(plan.windows, plan.tiles, strict=True):
        assert wy <= max(y0 - 10, 0) and wy + regions.window[0] >= min(y1 + 10, SIZE[1])
        assert wx <= max(x0 - 10, 0) and wx + regions.window[1] >= min(x1 + 10, SIZE[0])
    # nothing changed: every tile is kept (a plan with no window)
    same = regions.plan(_t(images[1]))
    assert same is not None and same.windows == [] and same.recomputed == 0.0


@pytest.mark.parametrize("batch", [1, 4])
def test_output_equals_running_every_frame_whole(batch: int) -> None:
    clip = frames_of(_scene(8))
    every = stage(SIZE, model="fast-x2")
    reusing = stage(SIZE, model="fast-x2", reuse_still=True)
    expected = rgb_of(every(clip))
    out = [f for i in range(0, len(clip), batch) for f in reusing(clip[i : i + batch])]
    assert [f.pts for f in out] == [f.pts for f in clip]
    assert reusing._regions is not None and reusing._regions.partial == 7
    note = next(n for n in reusing.run_notes() if n.startswith("region reuse"))
    assert note.startswith("region reuse: 7 frames restored in part; ")
    for got, want in zip(rgb_of(out), expected, strict=True):
        # float rounding of convolutions over windows against the whole frame: at most one level
        assert int(np.abs(got.astype(int) - want.astype(int)).max()) <= 1
    # and the square really moved in the output: the reused frames are not the first frame's
    assert _psnr(rgb_of(out)[-1], expected[0]) < 30


def test_a_change_everywhere_runs_the_whole_frame() -> None:
    base = texture(SIZE[1], SIZE[0], seed=12)
    clip = frames_of([u8(base), u8(base + 20.0), u8(base + 20.0)])
    reusing = stage(SIZE, model="fast-x2", reuse_still=True)
    out = rgb_of(reusing(clip))
    expected = rgb_of(stage(SIZE, model="fast-x2")(clip))
    assert reusing._regions is not None and reusing._regions.partial == 0
    assert reusing.frames_reused == 1  # the exact duplicate: still-frame reuse
    assert all(np.array_equal(a, b) for a, b in zip(out, expected, strict=True))


def test_a_slow_drift_is_caught_up_with_not_frozen() -> None:
    base = texture(SIZE[1], SIZE[0], seed=13)
    images = [u8(base + 2.0 * t) for t in range(6)]  # 2 levels a frame: below the threshold each time
    reusing = stage(SIZE, model="fast-x2", reuse_still=True)
    out = rgb_of(reusing(frames_of(images)))
    expected = rgb_of(stage(SIZE, model="fast-x2")(frames_of(images)))
    # the output never lags the input by more than the threshold (6 levels), so it follows the drift
    assert _psnr(out[-1], expected[-1]) > 35
    assert float(np.mean(out[-1])) > float(np.mean(out[0])) + 6


def test_where_region_reuse_cannot_be_exact_it_is_off() -> None:
    fast = load_model("fast-x2").descriptor
    assert regions_for(fast, SIZE, (2 * SIZE[0], 2 * SIZE[1])) is not None
    assert regions_for(fast, SIZE, (300, 180)) is None  # a resized output
    assert regions_for(fast, (48, 32), (96, 64)) is None  # a frame too small for a window to pay
    assert regions_for(load_model("denoise").descriptor, SIZE, SIZE) is None
    # temporal smoothing and tiling turn it off in the stage
    assert stage(SIZE, model="fast-x2", reuse_still=True, temporal=True)._regions is None
    assert stage(SIZE, model="fast-x2", reuse_still=True, tile=64)._regions is None
    assert stage(SIZE, model="fast-x2", reuse_still=True, reuse_regions=False)._regions is None


def test_cli_counts_regions_and_the_flag_turns_them_off(tmp_path: Path) -> None:
    luma = [img[..., 0] for img in _scene(6)]
    chroma = np.full((SIZE[1] // 2, SIZE[0] // 2), 128, np.uint8)
    src = write_lossless(tmp_path / "cam.mp4", [(y, chroma, chroma) for y in luma])
    runner = CliRunner()
    args = [
        "upscale",
        str(src),
        "-m",
        "bicubic",
        "-s",
        "2",
        "--preset",
        "ultrafast",
        "--crf",
        "0",
        "--reuse-still",
    ]
    runs = {}
    for flag in ("--reuse-regions", "--no-reuse-regions"):
        out, summary = tmp_path / f"{flag}.mkv", tmp_path / f"{flag}.json"
        result = runner.invoke(app, [*args[:2], str(out), *args[2:], flag, "--json", str(summary)])
        assert result.exit_code == 0, result.stderr
        runs[flag] = (json.loads(summary.read_text()), decoded(out), result.stderr)
    on, off = runs["--reuse-regions"], runs["--no-reuse-regions"]
    assert on[0]["frames_partial"] == 5 and off[0]["frames_partial"] == 0
    assert 0.5 < on[0]["pixels_reused"] < 5 / 6 and off[0]["pixels_reused"] == 0.0
    assert "region reuse: 5 frames restored in part" in on[2]
    model = on[0]["restore_steps"]["model"]
    assert model["frames"] == 6  # the first whole, then five in part
    # the same pictures and times either way (bicubic's windows are exact)
    assert [t for t, _ in on[1]] == [t for t, _ in off[1]]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(on[1], off[1], strict=True))


def test_measured_times_overrule_the_pixel_count() -> None:
    images = [_t(img) for img in _scene(60)]
    regions = ChangedRegions((SIZE[1], SIZE[0]), radius=10)
    assert regions.plan(images[0]) is None
    assert regions.plan(images[1]) is not None  # by pixels: 4 windows are cheaper than the frame
    for kind in ("whole", "window"):
        regions.observe(kind, 99.0, 1)  # a first call (a build, a warm-up) is not counted
    regions.observe("whole", 0.010, 1)
    regions.observe("window", 0.005, 4)  # windows measured at 1.25 ms each: still cheaper
    assert regions.plan(images[2]) is not None
    regions.observe("window", 0.100, 4)  # now far slower than their pixels said
    plans = [regions.plan(img) for img in images[3:]]
    # the whole frame runs, but every 50th decision the pixel rule is tried again, to re-time
    assert [k for k, p in enumerate(plans) if p is not None] == [47]  # decision 50: images[50]
