"""The denoise pre-pass: the noise estimator, the wiring in the Restore stage, the options."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

import vsr
from vsr.cli import app
from vsr.errors import ConfigError, ModelError
from vsr.models import load_model
from vsr.models.compact import SRVGGNetCompact
from vsr.models.denoise import FFDNet
from vsr.ops.noise import estimate_noise_sigma
from vsr.ops.tiling import pad_to_multiple
from vsr.pipeline.denoise_pass import DenoisePass
from vsr.quality import add_gaussian_noise, load_image

from clips import write_clip
from streams import frames_of, rgb_of, stage, texture, u8

FAST = dict(preset="ultrafast", precision="fp32")


def _tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0


@pytest.mark.parametrize("name", ["kodim03.png", "kodim23.png"])
@pytest.mark.parametrize("sigma", [15.0, 25.0])
def test_noise_estimate_on_a_real_photograph(shared_data: Path, name: str, sigma: float) -> None:
    clean = load_image(shared_data / "images" / "eval" / "Kodak24" / name)
    # as video arrives: rounded to 8 bits and clipped
    noisy = np.clip(np.rint(add_gaussian_noise(clean, sigma, index=0)), 0, 255).astype(np.uint8)
    estimate = float(estimate_noise_sigma(_tensor(noisy))[0]) * 255
    assert estimate == pytest.approx(sigma, rel=0.15)
    assert float(estimate_noise_sigma(_tensor(clean))[0]) * 255 < 0.35 * sigma  # texture is not noise


def _checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = FFDNet(num_feat=8, depth=3)
    with torch.no_grad():
        for p in net.parameters():  # the last conv starts at zero (the identity): make it matter
            p.uniform_(-0.2, 0.2)
    save_file(net.state_dict(), tmp_path / "tiny_denoiser.safetensors")
    return tmp_path / "tiny_denoiser.safetensors"


def test_the_pre_pass_is_the_denoiser_called_by_hand_before_sr(tmp_path: Path) -> None:
    denoiser = load_model(_checkpoint(tmp_path))
    clip = frames_of([u8(texture(31, 45, seed=s)) for s in (1, 2, 3)])  # odd sizes: padded for it
    with_pass = stage((45, 31), denoiser=denoiser, denoise=12.0)
    out = rgb_of(with_pass(clip))
    plain = stage((45, 31))
    rgb = plain.to_rgb(clip)
    padded, (h, w) = pad_to_multiple(rgb, 2)
    with torch.inference_mode():
        by_hand = denoiser.module(padded, torch.full((3,), 12.0 / 255))[..., :h, :w]
        expected = rgb_of(plain.to_frames(clip, plain.restore_rgb(by_hand)))
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(out, expected, strict=True))
    undenoised = rgb_of(plain(clip))
    assert np.abs(out[0].astype(int) - undenoised[0].astype(int)).mean() > 2  # the pass did something
    assert [s.name for s in with_pass.clocks.values()] == ["upload", "denoise", "model", "download"]


def test_auto_measures_each_scene_once_and_leaves_clean_video_alone(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    scene_a = [u8(texture(64, 96, seed=4) + rng.normal(0, 6, (64, 96, 3))) for _ in range(3)]
    scene_b = [
        u8(texture(64, 96, seed=5, low=0, high=100) + rng.normal(0, 20, (64, 96, 3))) for _ in range(3)
    ]
    denoise = DenoisePass(
        load_model(_checkpoint(tmp_path)), device=torch.device("cpu"), precision="fp32", sigma=None
    )
    rgb = torch.cat([_tensor(f) for f in scene_a + scene_b])
    levels = denoise.levels(rgb, [True, False, False, True, False, False])
    assert len(denoise.estimates) == 2
    assert denoise.estimates[0] == pytest.approx(6, rel=0.2) and denoise.estimates[1] == pytest.approx(
        20, rel=0.15
    )
    assert levels[:3] == [levels[0]] * 3 and levels[3:] == [levels[3]] * 3
    clean = torch.cat([_tensor(u8(texture(64, 96, seed=6)))] * 2)
    assert torch.equal(denoise(clean, [True, False]), clean)  # below the clean-video floor: untouched


def test_pipeline_keeps_frames_and_pts_and_reports_the_estimate(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "in.mp4", width=64, height=48, frames=12, time_base=Fraction(1, 1000),
                     pts=[40 * i for i in range(12)])  # fmt: skip
    model = _checkpoint(tmp_path)
    summary = vsr.upscale(
        src,
        tmp_path / "out.mp4",
        model="bicubic",
        scale=2,
        denoise="auto",
        denoiser=str(model),
        batch=4,
        **FAST,
    )
    with av.open(str(src)) as a, av.open(str(tmp_path / "out.mp4")) as b:
        assert [f.time for f in b.decode(video=0)] == [f.time for f in a.decode(video=0)]
    assert summary.frames_out == 12
    assert any(n.startswith("denoise auto: noise sigma ") for n in summary.notes), summary.notes


def test_options_and_cli_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vsr.models.builtin

    monkeypatch.setattr(vsr.models.builtin, "builtin_denoiser", lambda: None)  # an install without one
    assert vsr.UpscaleOptions(denoise="7.5", denoiser="d.safetensors").denoise_level == 7.5
    assert vsr.UpscaleOptions(denoise="AUTO", denoiser="d.safetensors").denoise_level == "auto"
    assert vsr.UpscaleOptions().denoise_level is None
    with pytest.raises(ConfigError, match="this install ships none; pass --denoiser CHECKPOINT"):
        vsr.UpscaleOptions(denoise="auto")
    sr = tmp_path / "sr.safetensors"
    save_file(SRVGGNetCompact(num_feat=4, num_conv=1, scale=2).state_dict(), sr)
    src = write_clip(tmp_path / "in.mp4", width=64, height=48, frames=3)
    with pytest.raises(ModelError, match="is a x2 super-resolution model, not a denoiser"):
        vsr.upscale(src, tmp_path / "o.mp4", model="bicubic", denoise=10, denoiser=str(sr))
    runner = CliRunner()
    denoiser = str(_checkpoint(tmp_path))
    for args, code, message in [
        (["--denoise", "auto"], 2, "this install ships none"),
        (["--denoise", "banana", "--denoiser", denoiser], 2, "--denoise must be off, auto or a noise sigma"),
        (["--denoise", "300", "--denoiser", denoiser], 2, "--denoise sigma must be in (0, 255]"),
        (["--denoiser", denoiser], 2, "--denoiser is given but --denoise is off"),
        (["--denoise", "10", "--denoiser", str(sr)], 1, "not a denoiser"),
    ]:
        result = runner.invoke(app, ["upscale", str(src), str(tmp_path / "o.mp4"), "-m", "bicubic", *args])
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == code and len(lines) == 1 and message in lines[0], (args, result.stderr)
    assert not (tmp_path / "o.mp4").exists()
