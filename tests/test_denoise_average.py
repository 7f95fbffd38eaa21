"""The denoise pre-pass's motion-compensated average: the recursion, the noise map it hands the
denoiser, the flow it follows, and its wiring and options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import vsr
from vsr.cli import app
from vsr.errors import ConfigError
from vsr.models import load_model
from vsr.models.denoise import FFDNet
from vsr.ops.temporal import average_step, warp
from vsr.pipeline.denoise_pass import DenoisePass
from vsr.pipeline.temporal import Motion, MotionAverage

from clips import write_clip
from streams import frames_of, rgb_of, stage, texture, translating, u8

CPU = torch.device("cpu")
FLOWS = pytest.mark.parametrize("flow", ["dis", "torch"])


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0


def test_a_still_scene_averages_towards_sigma_over_root_n_and_the_map_says_so() -> None:
    truth = _t(texture(64, 96, seed=3))
    sigma = 0.05
    gen = torch.Generator().manual_seed(0)
    zero = torch.zeros(1, 2, 64, 96)
    average = truth + sigma * torch.randn(truth.shape, generator=gen)
    variance = torch.full((1, 1, 64, 96), sigma**2)
    for _ in range(11):  # 12 frames: past the 8-frame cap
        frame = truth + sigma * torch.randn(truth.shape, generator=gen)
        average, variance = average_step(
            average, variance, frame, zero, sigma, tolerance=4 / 255, min_variance=sigma**2 / 8
        )
    error = float((average - truth).std())
    claimed = float(variance.sqrt().median())
    # the cap: a past worth 8 frames and the current one, the mean of 9: sigma / 3
    assert claimed == pytest.approx(sigma / 3, rel=0.05), claimed / sigma
    assert error == pytest.approx(claimed, rel=0.2), (error / sigma, claimed / sigma)


def test_a_frame_the_warp_cannot_explain_is_taken_as_it_is() -> None:
    sigma = 0.02
    before, after = _t(texture(48, 64, seed=1)), _t(texture(48, 64, seed=2, low=0, high=120))
    variance = torch.full((1, 1, 48, 64), sigma**2 / 8)
    mixed, var = average_step(
        before,
        variance,
        after,
        torch.zeros(1, 2, 48, 64),
        sigma,
        tolerance=4 / 255,
        min_variance=sigma**2 / 8,
    )
    assert float((mixed - after).abs().mean()) < 0.5 / 255  # no ghost of the frame before
    assert float(var.sqrt().mean()) == pytest.approx(sigma, rel=0.05)  # and it is as noisy as it came


@FLOWS
def test_moving_texture_is_followed_and_cleaned(flow: str) -> None:
    truths = [_t(f) for f in translating(10, (96, 128), (1, 0), seed=5)]  # 1 px a frame to the left
    sigma = 12 / 255
    gen = torch.Generator().manual_seed(1)
    average = MotionAverage(flow)  # type: ignore[arg-type]
    for k, truth in enumerate(truths):
        noisy = (truth + sigma * torch.randn(truth.shape, generator=gen)).clamp(0, 1)
        out, noise_map = average(noisy, sigma, k == 0)
        if k == 0:
            assert torch.equal(out, noisy) and torch.allclose(noise_map, torch.full_like(noise_map, sigma))
    inner = (..., slice(8, -8), slice(8, -8))  # the edge the texture enters from has no past
    error = float((out - truth)[inner].std())
    assert error < 0.55 * sigma, error / sigma  # a lone frame has sigma; 8 followed frames sigma / 2.8
    assert float(noise_map[inner].mean()) < 0.55 * sigma


def test_the_flow_on_2x2_blocks_finds_a_subpixel_shift_and_small_frames_keep_their_size() -> None:
    big = texture(200, 260, seed=9)
    shift = (0.5, -0.25)  # dx, dy: current(x, y) = previous(x + 0.5, y - 0.25)
    previous = big[20:164, 20:212]
    m = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    import cv2

    # WARP_INVERSE_MAP: current(x, y) = big(x + 0.5, y - 0.25)
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    current = cv2.warpAffine(big.astype(np.float32), m, (260, 200), flags=flags)[20:164, 20:212]
    motion = Motion("dis", downscale=2)
    g_cur, g_prev = motion.greys(_t(current)), motion.greys(_t(previous))
    assert g_cur.shape[-2:] == (72, 96)  # measured on 2x2 blocks
    flow = motion(g_cur[0], g_prev[0], (144, 192), CPU)
    assert flow.shape == (1, 2, 144, 192)
    inner = flow[..., 16:-16, 16:-16]
    assert float(inner[:, 0].median()) == pytest.approx(shift[0], abs=0.1)
    assert float(inner[:, 1].median()) == pytest.approx(shift[1], abs=0.1)
    small = motion.greys(_t(texture(40, 60, seed=1)))
    assert small.shape[-2:] == (40, 60)  # 20 pixels a side would be too few to follow


def test_ffdnet_takes_a_noise_map_and_a_uniform_one_is_a_scalar() -> None:
    torch.manual_seed(0)
    net = FFDNet(num_feat=8, depth=3).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.2, 0.2)
    x = torch.rand(2, 3, 32, 24)
    with torch.no_grad():
        scalar = net(x, torch.tensor([0.03, 0.08]))
        uniform = net(x, torch.tensor([0.03, 0.08]).view(2, 1, 1, 1).expand(2, 1, 32, 24).contiguous())
        assert torch.allclose(scalar, uniform, atol=1e-6)
        varying = torch.full((2, 1, 32, 24), 0.03)
        varying[..., 16:, :] = 0.08  # the bottom half noisier
        mixed = net(x, varying)
        low = net(x, 0.03)
        # 3 convs at half resolution see 6 pixels: rows far above the change are the low level's
        assert torch.allclose(mixed[..., :8, :], low[..., :8, :], atol=1e-6)
        assert not torch.allclose(mixed[..., 24:, :], low[..., 24:, :], atol=1e-4)
        with pytest.raises(ValueError, match="does not shrink evenly"):
            net(x, torch.full((2, 1, 31, 24), 0.03))


def test_the_pass_batched_is_the_pass_frame_by_frame_and_beats_it_on_a_still_scene() -> None:
    model = load_model("denoise-lite")
    truth = texture(64, 96, seed=2)
    rng = np.random.default_rng(3)
    clip = [_t(u8(truth + rng.normal(0, 15, truth.shape))) for _ in range(6)]
    batched = DenoisePass(model, device=CPU, precision="fp32", sigma=15.0, temporal=True)
    single = DenoisePass(model, device=CPU, precision="fp32", sigma=15.0, temporal=True)
    alone = DenoisePass(model, device=CPU, precision="fp32", sigma=15.0)
    with torch.inference_mode():
        a = torch.cat(
            [
                batched(torch.cat(clip[:4]), [True, False, False, False]),
                batched(torch.cat(clip[4:]), [False, False]),
            ]
        )
        b = torch.cat([single(x, [k == 0]) for k, x in enumerate(clip)])
        c = torch.cat([alone(x, [k == 0]) for k, x in enumerate(clip)])
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(b[0], c[0])  # a scene's first frame has no past: the denoiser alone
    t = _t(truth)

    def psnr(x: torch.Tensor) -> float:
        return float(-10 * torch.log10(((x.clamp(0, 1) - t) ** 2).mean()))

    assert psnr(b[-1]) > psnr(c[-1]) + 1.5, (psnr(b[-1]), psnr(c[-1]))


def test_a_cut_starts_the_average_afresh_in_the_restore_stage() -> None:
    model = load_model("denoise-lite")
    rng = np.random.default_rng(4)
    first = [u8(texture(48, 64, seed=1) + rng.normal(0, 15, (48, 64, 3))) for _ in range(3)]
    second = [u8(texture(48, 64, seed=8, low=0, high=110) + rng.normal(0, 15, (48, 64, 3))) for _ in range(2)]
    clip = frames_of(first + second)
    averaged = stage((64, 48), denoiser=model, denoise=15.0, denoise_temporal=True)
    alone = stage((64, 48), denoiser=model, denoise=15.0)
    out_a, out_b = rgb_of(averaged(clip)), rgb_of(alone(clip))
    # the first frame after the cut is the denoiser's on that frame alone: nothing of the scene before
    assert np.abs(out_a[3].astype(int) - out_b[3].astype(int)).max() <= 1
    assert np.abs(out_a[2].astype(int) - out_b[2].astype(int)).mean() > 0.5  # before it, it averaged
    assert averaged.scene_cuts == 1


def test_options_and_cli() -> None:
    assert vsr.UpscaleOptions().denoise_temporal == "on"
    with pytest.raises(ConfigError, match="--denoise-temporal must be off or on, got 'maybe'"):
        vsr.UpscaleOptions(denoise_temporal="maybe")  # type: ignore[arg-type]


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "in.mp4", width=64, height=48, frames=3)
    runner = CliRunner()
    for args, message in [
        (["upscale", str(src), str(tmp_path / "o.mp4"), "-m", "bicubic", "--denoise", "10", "--denoise-temporal", "maybe"],
         "--denoise-temporal must be off or on"),
        (["eval", str(src), "-s", "2", "--denoise-temporal", "on"], "--denoise-temporal applies to the rows that denoise"),
        (["eval", str(tmp_path), "-s", "2", "--denoise-temporal", "on"], "applies to a video clip"),
    ]:  # fmt: skip
        result = runner.invoke(app, args)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], (args, result.stderr)
    assert not (tmp_path / "o.mp4").exists()


def test_the_remap_warp_of_the_cpu_is_the_grid_sample_warp_other_devices_use() -> None:
    # float32 on the CPU goes through OpenCV's remap; every other dtype or device through grid_sample
    gen = torch.Generator().manual_seed(2)
    average = _t(texture(40, 56, seed=4))
    variance = torch.rand(1, 1, 40, 56, generator=gen) * 1e-3
    flow = torch.randn(1, 2, 40, 56, generator=gen) * 2.0  # some sources fall outside: border taps
    # the current frame is the warped average plus noise: the warp is trusted, so it decides
    current = warp(average.double(), flow.double()).float() + 0.03 * torch.randn(1, 3, 40, 56, generator=gen)
    args = dict(sigma=0.03, tolerance=4 / 255, min_variance=1e-4)
    fast = average_step(average, variance, current, flow, **args)  # type: ignore[arg-type]
    exact = average_step(average.double(), variance.double(), current.double(), flow.double(), **args)  # type: ignore[arg-type]
    for a, b in zip(fast, exact, strict=True):
        assert a.dtype == torch.float32 and b.dtype == torch.float64
        assert float((a.double() - b).abs().max()) < 2e-3  # remap may interpolate at 1/32 pixel
    assert float(fast[1].mean()) < 0.6 * 0.03**2  # it did average


def test_the_cpu_step_matches_the_torch_step_where_trust_is_partial() -> None:
    # the CPU path (OpenCV and numpy, vsr.ops.average_cpu) against the torch ops in float64, where
    # the mismatch grows from nothing to three tolerances across the frame: every trust in between
    gen = torch.Generator().manual_seed(3)
    h, w, sigma, tolerance = 48, 96, 0.02, 4 / 255
    average = _t(texture(h, w, seed=6))
    variance = torch.rand(1, 1, h, w, generator=gen) * sigma**2
    flow = torch.randn(1, 2, h, w, generator=gen) * 1.5
    ramp = torch.linspace(0.0, 3.0 * tolerance + 2 * sigma, w).view(1, 1, 1, w)
    current = (
        warp(average.double(), flow.double()).float() + ramp + sigma * torch.randn(1, 3, h, w, generator=gen)
    )
    args = dict(sigma=sigma, tolerance=tolerance, min_variance=sigma**2 / 8)
    fast = average_step(average, variance, current, flow, **args)  # type: ignore[arg-type]
    exact = average_step(average.double(), variance.double(), current.double(), flow.double(), **args)  # type: ignore[arg-type]
    for a, b in zip(fast, exact, strict=True):
        assert a.shape == b.shape and a.dtype == torch.float32
        assert float((a.double() - b).abs().max()) < 2e-3
    for a_flow in (flow, flow.double()):  # a flow of another size: the same error on both paths
        with pytest.raises(ValueError, match=r"flow \(1, 2, 24, 48\) does not fit image \(1, 3, 48, 96\)"):
            image = average if a_flow.dtype == torch.float32 else average.double()
            average_step(
                image, variance.to(image.dtype), current.to(image.dtype), a_flow[..., :24, :48], **args
            )  # type: ignore[arg-type]
    # the warped average's share went from most on the left to none on the right
    share = 1.0 - exact[1][0, 0] / sigma**2  # rough: the new variance falls as the share rises
    left, right = float(share[:, : w // 8].mean()), float(share[:, -w // 8 :].mean())
    assert left > 0.3 and abs(right) < 0.05, (left, right)


@pytest.mark.gpu
def test_on_cuda_the_step_is_the_cpu_step_and_the_pass_cleans_a_moving_texture() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch sees none)")
    cuda = torch.device("cuda", 0)
    # the step: grid_sample and torch ops on the GPU against the float64 torch ops on the CPU
    gen = torch.Generator().manual_seed(4)
    average = _t(texture(40, 56, seed=4))
    variance = torch.rand(1, 1, 40, 56, generator=gen) * 1e-3
    flow = torch.randn(1, 2, 40, 56, generator=gen) * 2.0
    current = warp(average.double(), flow.double()).float() + 0.03 * torch.randn(1, 3, 40, 56, generator=gen)
    args = dict(sigma=0.03, tolerance=4 / 255, min_variance=1e-4)
    on_gpu = average_step(average.to(cuda), variance.to(cuda), current.to(cuda), flow.to(cuda), **args)  # type: ignore[arg-type]
    exact = average_step(average.double(), variance.double(), current.double(), flow.double(), **args)  # type: ignore[arg-type]
    for a, b in zip(on_gpu, exact, strict=True):
        assert a.device == cuda and float((a.double().cpu() - b).abs().max()) < 1e-4
    # the pass, as the Restore stage builds it on a GPU (torch flow, fp16): a texture moving 1 px a
    # frame, sigma 12, cleaned well below what the per-frame pass leaves
    truths = [_t(f) for f in translating(10, (96, 128), (1, 0), seed=5)]
    noise = torch.Generator().manual_seed(1)
    noisy = [(t + 12 / 255 * torch.randn(t.shape, generator=noise)).clamp(0, 1) for t in truths]
    model = load_model("denoise-lite")
    averaged = DenoisePass(model, device=cuda, precision="fp16", sigma=12.0, temporal=True, flow="torch")
    alone = DenoisePass(model, device=cuda, precision="fp16", sigma=12.0)
    inner = (..., slice(8, -8), slice(8, -8))
    with torch.inference_mode():
        for k, x in enumerate(noisy):
            a, b = averaged(x.to(cuda), [k == 0]), alone(x.to(cuda), [k == 0])
    assert averaged.temporal and a.device == cuda
    err_averaged = float((a.float().cpu() - truths[-1])[inner].pow(2).mean())
    err_alone = float((b.float().cpu() - truths[-1])[inner].pow(2).mean())
    assert err_averaged < 0.8 * err_alone, (err_averaged, err_alone)
