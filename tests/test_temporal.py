"""Temporal consistency: the warp ops, scene cuts resetting the state, less flicker, the options."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import vsr
from vsr.cli import app
from vsr.errors import ConfigError
from vsr.ops.scene import frame_signature, is_cut
from vsr.ops.temporal import inside, warp, warp_upscaled
from vsr.quality.flicker import flicker
from vsr.quality.metrics import psnr_y

from clips import write_clip
from streams import frames_of, rgb_of, stage, texture, translating, u8

FAST = dict(preset="ultrafast", precision="fp32")


# each motion estimator through the same checks: OpenCV DIS (the CPU default) and the torch one
FLOWS = pytest.mark.parametrize("flow", ["dis", "torch"])


def test_warp_follows_integer_flow_and_inside_marks_what_came_from_outside() -> None:
    img = torch.arange(2 * 6 * 8, dtype=torch.float32).view(1, 2, 6, 8)
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # each pixel comes from 2 right, 1 up
    out = warp(img, flow)
    assert torch.allclose(out[..., 1:, :6], img[..., :-1, 2:], atol=1e-4)  # normalised-unit rounding
    mask = inside(flow)[0, 0]
    assert mask[1:, :6].all() and not mask[0].any() and not mask[:, 6:].any()
    # the same motion measured at a quarter of the size drives the warp of a 4x larger image
    big = torch.rand(1, 3, 24, 32)
    shifted = warp_upscaled(big, torch.full((1, 2, 6, 8), 0.5), mode="bilinear")  # 2 px at 4x
    assert torch.allclose(shifted[..., :-2, :-2], big[..., 2:, 2:], atol=1e-5)
    assert torch.allclose(warp_upscaled(big, torch.zeros(1, 2, 6, 8)), big, atol=1e-5)


def test_cut_detector_separates_a_cut_from_motion() -> None:
    a = translating(3, (48, 64), (4, 2), seed=1)
    b = texture(48, 64, seed=2, low=0, high=120)
    sig = frame_signature(torch.from_numpy(np.stack([a[0], a[2], b])[:, None, ..., 0] / 255.0).float())
    assert not is_cut(sig[0], sig[1])  # 8 px of motion in two frames is the same scene
    assert is_cut(sig[1], sig[2])


def _scene_change_clip() -> list[np.ndarray]:
    """Four frames of one scene, then three of another (other texture, other brightness)."""
    first = translating(4, (32, 48), (1, 0), seed=1)
    second = [t * 0.5 + 20 for t in translating(3, (32, 48), (0, 1), seed=7)]
    return [u8(f) for f in first + second]


@FLOWS
def test_a_hard_cut_resets_the_state_so_no_ghost_of_the_previous_scene_remains(flow: str) -> None:
    clip = frames_of(_scene_change_clip())
    plain = rgb_of(stage((48, 32), noisy=0.05)(clip))
    smoothing = stage((48, 32), noisy=0.05, temporal=True, temporal_flow=flow, temporal_strength=0.8)
    smoothed = rgb_of(smoothing(clip))
    assert smoothing.scene_cuts == 1
    # the first frame of each scene is the model's output itself, exactly...
    assert np.array_equal(smoothed[0], plain[0]) and np.array_equal(smoothed[4], plain[4])
    # ...and every other frame was blended: the comparison above can fail
    for k in (1, 2, 3, 5, 6):
        assert np.abs(smoothed[k].astype(int) - plain[k].astype(int)).mean() > 1.0, k


@FLOWS
def test_reset_state_starts_a_new_scene_as_after_a_reconnect(flow: str) -> None:
    clip = frames_of([u8(f) for f in translating(3, (32, 48), (1, 0), seed=1)])
    plain_stage = stage((48, 32), noisy=0.05)
    plain = [f.planes[0] for frame in clip for f in plain_stage([frame])]
    smoothing = stage((48, 32), noisy=0.05, temporal=True, temporal_flow=flow, temporal_strength=0.8)
    first = smoothing(clip[0:1]) + smoothing(clip[1:2])
    smoothing.reset_state()
    after = smoothing(clip[2:3])
    assert not np.array_equal(first[1].planes[0], plain[1])
    assert np.array_equal(after[0].planes[0], plain[2]) and smoothing.scene_cuts == 0


@FLOWS
def test_temporal_smoothing_cuts_the_flicker_of_a_noisy_model_without_losing_psnr(flow: str) -> None:
    hr = [u8(f) for f in translating(8, (64, 96), (2, 0), seed=3)]
    lr = [u8(f[::2, ::2].astype(float)) for f in hr]  # 1 px a frame at the input
    plain = rgb_of(stage((48, 32), noisy=0.04)(frames_of(lr)))
    smoothed = rgb_of(stage((48, 32), noisy=0.04, temporal=True, temporal_flow=flow)(frames_of(lr)))
    off, on = flicker(plain, hr), flicker(smoothed, hr)
    assert on.output < 0.7 * off.output, (on, off)
    psnr_off = np.mean([psnr_y(o, g, crop=2) for o, g in zip(plain, hr, strict=True)])
    psnr_on = np.mean([psnr_y(o, g, crop=2) for o, g in zip(smoothed, hr, strict=True)])
    assert psnr_on > psnr_off  # blending in aligned past frames averages the model's noise away


@FLOWS
def test_batches_and_tiles_smooth_the_frames_in_order_as_single_frames_do(flow: str) -> None:
    clip = frames_of([u8(f) for f in translating(6, (32, 48), (1, 1), seed=4)])
    single = stage((48, 32), temporal=True, temporal_flow=flow)
    reference = [f for frame in clip for f in single([frame])]
    batched = stage((48, 32), temporal=True, temporal_flow=flow)
    out = batched(clip[:4]) + batched(clip[4:])
    assert [f.pts for f in out] == [f.pts for f in clip]
    assert all(np.array_equal(a, b) for a, b in zip(rgb_of(out), rgb_of(reference), strict=True))
    tiled = stage((48, 32), temporal=True, temporal_flow=flow, tile=16, tile_overlap=8)(clip)
    diff = max(
        np.abs(a.astype(int) - b.astype(int)).max()
        for a, b in zip(rgb_of(tiled), rgb_of(reference), strict=True)
    )
    assert diff <= 1


def test_the_pipeline_keeps_every_frame_and_pts_and_times_the_step(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "in.mp4", width=64, height=48, frames=12, time_base=Fraction(1, 90000),
                     pts=[3000 * i + 1000 * (i % 3) for i in range(12)])  # fmt: skip
    summary = vsr.upscale(src, tmp_path / "out.mp4", model="bicubic", scale=2, temporal="on", batch=3, **FAST)
    with av.open(str(src)) as a, av.open(str(tmp_path / "out.mp4")) as b:
        times_in = [f.time for f in a.decode(video=0)]
        times_out = [f.time for f in b.decode(video=0)]
    assert summary.frames_out == len(times_out) == 12 and times_out == times_in
    assert {s.name for s in summary.restore_steps} >= {"analyse", "temporal", "model"}


def test_options_and_cli_flags(tmp_path: Path) -> None:
    assert vsr.UpscaleOptions(temporal="on", temporal_strength=1).temporal_strength == 1
    for kwargs, message in [
        ({"temporal": "yes"}, "--temporal must be off or on"),
        ({"temporal_strength": 1.5}, r"--temporal-strength must be in \[0, 1\]"),
        ({"temporal_strength": "strong"}, "--temporal-strength must be a number"),
    ]:
        with pytest.raises(ConfigError, match=message):
            vsr.UpscaleOptions(**kwargs)  # type: ignore[arg-type]
    src = write_clip(tmp_path / "in.mp4", width=64, height=48, frames=4)
    runner = CliRunner()
    for args, message in [
        (["--temporal", "sideways"], "--temporal must be off or on"),
        (["--temporal", "on", "--temporal-strength", "-0.1"], "--temporal-strength must be in [0, 1]"),
    ]:
        result = runner.invoke(app, ["upscale", str(src), str(tmp_path / "o.mp4"), "-m", "bicubic", *args])
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_on_a_gpu_the_temporal_step_uses_the_torch_flow_and_matches_the_cpu() -> None:
    from vsr.backends import BackendOptions, create_backend
    from vsr.models import load_model
    from vsr.pipeline.restore import RestoreConfig, RestoreStage

    from streams import RGB

    clip = frames_of([u8(f) for f in translating(5, (32, 48), (1, 1), seed=5)])
    model = load_model("bicubic", scale=2)
    config = RestoreConfig(
        input_size=(48, 32), input_pix_fmt="rgb24", input_color=RGB, output_size=(96, 64),
        output_pix_fmt="rgb24", output_color=RGB, temporal=True,
    )  # fmt: skip
    cuda = create_backend("torch", model, BackendOptions(device=torch.device("cuda"), precision="fp32"))
    on_gpu = RestoreStage(cuda, model.descriptor, config)
    assert on_gpu._temporal is not None and on_gpu._temporal.flow_method == "torch"
    on_cpu = stage((48, 32), temporal=True, temporal_flow="torch")
    diff = max(
        np.abs(a.astype(int) - b.astype(int)).max()
        for a, b in zip(rgb_of(on_gpu(clip)), rgb_of(on_cpu(clip)), strict=True)
    )
    assert diff <= 1


def test_the_cpu_remap_warp_matches_grid_sample_in_and_past_the_borders() -> None:
    # warp_upscaled on a CPU float32 image goes through OpenCV's remap (vsr.ops.temporal); it must
    # sample as grid_sample's bicubic with border padding does, including flows that leave the image
    from vsr.ops.temporal import _grid_sample_upscaled

    rng = np.random.default_rng(3)
    coarse = torch.from_numpy(rng.random((2, 3, 12, 16))).float()
    smooth = torch.nn.functional.interpolate(coarse, size=(48, 64), mode="bilinear", align_corners=False)
    flow = torch.from_numpy(rng.normal(0.0, 3.0, (2, 2, 24, 32))).float()
    flow[:, :, :4] += 20.0  # the top rows come from past the right and bottom edges
    fast = warp_upscaled(smooth, flow)
    reference = _grid_sample_upscaled(smooth, flow, "bicubic")
    assert fast.shape == reference.shape and fast.is_contiguous()
    # remap interpolates at 1/32 pixel: off by up to 1/64 pixel in x and in y times the slope (here
    # < 0.25 a pixel); a half-pixel convention error would be off by 0.1 and more
    assert (fast - reference).abs().max() < 2 * 0.25 / 64
    assert (fast - reference).abs().mean() < 1.5e-3  # 7e-4 here; a half-pixel error gives 0.02
    # one flow for a batch of two images warps both alike
    both = warp_upscaled(smooth, flow[:1])
    assert torch.equal(both[1], warp_upscaled(smooth[1:], flow[:1])[0])
