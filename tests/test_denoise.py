"""The denoiser: FFDNet-style architecture and its detection, training task, eval protocol and CLI.

Everything runs on tiny synthetic images and an 8- or 16-feature network on the CPU; the real
recipe is only loaded and measured. The noisy-baseline numbers use two CBSD68 images when the
shared data is there.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from typer.testing import CliRunner

from vsr.backends import BackendOptions, create_backend
from vsr.cli import app
from vsr.engines.onnx_export import export_onnx
from vsr.errors import ConfigError, ModelError
from vsr.models import ARCHITECTURES, FFDNet, RRDBNet, SRVGGNetCompact, load_model, load_state_dict
from vsr.ops.tiling import pad_to_multiple
from vsr.quality import (
    ModelDenoiser,
    add_gaussian_noise,
    evaluate_denoising,
    evaluate_folder,
    format_report,
    mean_line,
    psnr,
)
from vsr.train import (
    LOG_NAME,
    GaussianNoise,
    NoisyPatchDataset,
    Trainer,
    build_model,
    conv_flops_per_pixel,
    export_run,
    load_checkpoint,
    load_recipe,
    parameter_count,
    read_weights_metadata,
    save_checkpoint,
)

from training_images import make_training_root

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "train"
runner = CliRunner()

RECIPE = """
scale = {scale}
task = "{task}"
steps = {steps}
seed = 3
log_every = 2
val_every = 2
checkpoint_every = 100
[model]
architecture = "{arch}"
{hp}
[data]
root = "{root}"
train = ["train"]
val = "val"
report = ["val"]
patch_size = 16
batch = 4
degradation = "{degradation}"
[optimizer]
lr = 2e-3
[schedule]
warmup_steps = 1
"""
_DENOISE = {"scale": 1, "task": "denoise", "arch": "ffdnet", "hp": "num_feat = 16\ndepth = 3"}
_DENOISE |= {"degradation": "gaussian-noise"}
_SR = {"scale": 2, "task": "sr", "arch": "compact", "hp": "num_feat = 8\nnum_conv = 1"}
_SR |= {"degradation": "bicubic"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # odd validation sizes: the evaluation pads and crops back
    return make_training_root(tmp_path_factory.mktemp("data"), val_size=(31, 25))


def _recipe(tmp_path: Path, data_root: Path, *, steps: int = 4, **fields: object) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(RECIPE.format(**{**_DENOISE, "steps": steps, "root": data_root, **fields}))
    return path


def _random_ffdnet(num_feat: int = 8, depth: int = 4, seed: int = 0) -> FFDNet:
    torch.manual_seed(seed)
    net = FFDNet(num_feat=num_feat, depth=depth).eval()
    with torch.no_grad():
        for p in net.parameters():  # the last conv starts at zero: make every layer matter
            p.uniform_(-0.2, 0.2)
    return net


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    return lines[0]


# ---- architecture ----


@pytest.mark.parametrize(("num_feat", "depth"), [(8, 2), (8, 4), (12, 6)])
def test_detected_and_hyperparameters_round_trip(tmp_path: Path, num_feat: int, depth: int) -> None:
    net = _random_ffdnet(num_feat, depth)
    save_file(net.state_dict(), tmp_path / "d.safetensors")
    loaded = load_model(tmp_path / "d.safetensors")
    d = loaded.descriptor
    assert (d.architecture, d.task, d.scale, d.in_channels, d.out_channels) == ("ffdnet", "denoise", 1, 3, 3)
    assert d.size_multiple == 2 and d.receptive_radius == 2 * depth + 1
    assert d.hyperparameters == {"num_feat": num_feat, "depth": depth}
    assert d.parameters == parameter_count(net)
    assert d.summary() == f"d.safetensors (ffdnet denoiser, num_feat={num_feat}, depth={depth})"
    x = torch.rand(2, 3, 10, 14)
    with torch.no_grad():
        assert torch.equal(loaded.module(x, 0.1), net(x, 0.1))


def test_detectors_never_collide(shared_data: Path) -> None:
    compact = SRVGGNetCompact(num_feat=4, num_conv=1, scale=2).state_dict()
    rrdb = RRDBNet(3, 3, scale=2, num_feat=8, num_block=1, num_grow_ch=4).state_dict()
    ffdnet = FFDNet(num_feat=8, depth=3).state_dict()
    pairs = (("compact", compact), ("rrdb", rrdb), ("ffdnet", ffdnet))
    found = {name: [a.id for a in ARCHITECTURES if a.detect(sd)] for name, sd in pairs}
    assert found == {"compact": ["compact"], "rrdb": ["rrdb"], "ffdnet": ["ffdnet"]}
    # a compact state dict with extra conv_in/conv_out keys is no model at all, not half of each
    assert ARCHITECTURES.detect({**compact, "conv_in.weight": ffdnet["conv_in.weight"]}) is None
    real = shared_data / "weights" / "realesr-animevideov3.pth"
    if not real.is_file():
        pytest.skip(f"{real} not found")
    assert [a.id for a in ARCHITECTURES if a.detect(load_state_dict(real))] == ["compact"]


def test_misfitting_shapes_are_one_line_model_errors(tmp_path: Path) -> None:
    sd = FFDNet(num_feat=8, depth=3).state_dict()
    sd["conv_in.weight"] = torch.zeros(8, 15, 3, 3)  # the paper's three noise channels: not this layout
    save_file(sd, tmp_path / "bad.safetensors")
    with pytest.raises(ModelError, match=r"conv_in has 15 inputs and conv_out 12 outputs") as exc:
        load_model(tmp_path / "bad.safetensors")
    assert "\n" not in str(exc.value)


def test_sigma_forms_odd_sizes_and_the_residual() -> None:
    net = _random_ffdnet()
    x = torch.rand(2, 3, 8, 12)
    with torch.no_grad():
        both = net(x, torch.tensor([0.05, 0.2]))
        assert torch.allclose(both[1:], net(x[1:], 0.2), atol=1e-6)
        assert torch.allclose(both[:1], net(x[:1], torch.tensor(0.05)), atol=1e-6)
        assert torch.equal(net(x, torch.full((2, 1, 1, 1), 0.2)), net(x, 0.2))
        assert not torch.allclose(net(x, 0.0), net(x, 0.2))  # the noise level is used
        with pytest.raises(ValueError, match="3 values for a batch of 2"):
            net(x, torch.rand(3))
        with pytest.raises(ValueError, match=r"even height and width, got 13x9; pad .* \(2\)"):
            net(torch.rand(1, 3, 9, 13), 0.1)
        # the caller pads (as for every vsr model) and crops back: the size is the input's
        padded, (h, w) = pad_to_multiple(torch.rand(1, 3, 9, 13), 2)
        assert net(padded, 0.1)[..., :h, :w].shape == (1, 3, 9, 13)
        # a fresh network is the identity: its last conv starts at zero (the noise it predicts)
        fresh = FFDNet(num_feat=8, depth=3)
        assert torch.equal(fresh(x, 0.3), x)


def test_inference_on_the_cpu_fuses_each_relu_into_its_conv_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import vsr.models._cpu_conv as cpu_conv

    real = cpu_conv._POINTWISE
    if real is None:
        pytest.skip("this PyTorch build has no oneDNN convolution + ReLU op (mkldnn::_convolution_pointwise)")
    calls: list[str] = []

    def counted(*args: object) -> torch.Tensor:
        calls.append(str(args[7]))
        return real(*args)

    depth = 5
    x, sigma = torch.rand(2, 3, 12, 16), torch.tensor([0.05, 0.2])
    for dtype in (torch.float32, torch.bfloat16):
        net = _random_ffdnet(depth=depth).to(dtype=dtype, memory_format=torch.channels_last)
        inputs = x.to(dtype=dtype).contiguous(memory_format=torch.channels_last)
        calls.clear()
        monkeypatch.setattr(cpu_conv, "_POINTWISE", counted)
        with torch.inference_mode():
            fused = net(inputs, sigma)
        assert calls == ["relu"] * (depth - 1)  # every conv but the last, which has no ReLU
        monkeypatch.setattr(cpu_conv, "_POINTWISE", None)
        with torch.inference_mode():
            plain = net(inputs, sigma)
        assert torch.equal(fused, plain), dtype

    # a build whose oneDNN refuses the op falls back to the plain ops, once and for all
    def refusing(*args: object) -> torch.Tensor:
        raise RuntimeError("mkldnn_convolution_pointwise: unsupported on this platform")

    net = _random_ffdnet(depth=depth)
    monkeypatch.setattr(cpu_conv, "_POINTWISE", None)
    with torch.inference_mode():
        plain = net(x, sigma)
    monkeypatch.setattr(cpu_conv, "_POINTWISE", refusing)
    with torch.inference_mode():
        assert torch.equal(net(x, sigma), plain)
    assert cpu_conv._POINTWISE is None
    # training keeps the plain ops, which have a backward
    monkeypatch.setattr(cpu_conv, "_POINTWISE", counted)
    calls.clear()
    net = _random_ffdnet(depth=depth)
    net(x, sigma).square().sum().backward()
    assert (
        calls == [] and net.conv_in.weight.grad is not None and float(net.conv_in.weight.grad.abs().sum()) > 0
    )


def test_receptive_radius_is_where_an_input_pixel_reaches() -> None:
    depth = 3
    net = _random_ffdnet(depth=depth).double()
    x = torch.rand(1, 3, 40, 40, dtype=torch.float64)
    bumped = x.clone()
    bumped[0, :, 20, 21] += 1.0
    with torch.no_grad():
        changed = (net(bumped, 0.1) - net(x, 0.1)).abs().amax(dim=(0, 1)) > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    reach = max(int((rows - 20).abs().max()), int((cols - 21).abs().max()))
    arch = ARCHITECTURES.detect(net.state_dict())
    assert arch is not None
    described = arch.build({k: v.float() for k, v in net.state_dict().items()}, name="n", sha256=None)
    assert reach == 2 * depth + 1 == described.descriptor.receptive_radius


def test_traces_with_a_second_input_and_symbolic_sizes(tmp_path: Path) -> None:
    # What a two-input ONNX export will need: no Python sizes or checks baked into the trace.
    net = _random_ffdnet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's own notice, not ours
        warnings.simplefilter("error", torch.jit.TracerWarning)
        traced = torch.jit.trace(net, (torch.rand(1, 3, 16, 16), torch.tensor([0.1])))
    x, sigma = torch.rand(2, 3, 24, 20), torch.tensor([0.05, 0.3])
    with torch.no_grad():
        assert torch.allclose(traced(x, sigma), net(x, sigma), atol=1e-6)
    # until then the one-input exporter and backends refuse it, in one line
    save_file(net.state_dict(), tmp_path / "d.safetensors")
    loaded = load_model(tmp_path / "d.safetensors")
    with pytest.raises(ModelError, match="is a denoiser; ONNX export supports super-resolution models only"):
        export_onnx(loaded, tmp_path / "d.onnx")
    options = BackendOptions(device=torch.device("cpu"), precision="fp32")
    with pytest.raises(ModelError, match="is a denoiser, not a super-resolution model; use an SR model here"):
        create_backend("torch", loaded, options)


def _cdncnn_b() -> nn.Module:
    # Zhang et al. 2017, colour blind model: 20 3x3 convs, 64 features, BN in the 18 middle ones.
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, padding=1), nn.ReLU()]
    for _ in range(18):
        layers += [nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU()]
    return nn.Sequential(*layers, nn.Conv2d(64, 3, 3, padding=1))


def test_default_costs_at_most_a_quarter_of_dncnn() -> None:
    dncnn = conv_flops_per_pixel(_cdncnn_b())
    ours = conv_flops_per_pixel(FFDNet(), 0.1)
    ffdnet_paper = conv_flops_per_pixel(FFDNet(num_feat=96, depth=12), 0.1)
    assert dncnn == 2 * 9 * (3 * 64 + 18 * 64 * 64 + 64 * 3) == 1_334_016
    assert ours == 2 * 9 * (13 * 80 + 11 * 80 * 80 + 80 * 12) / 4 == 325_800
    assert ours <= dncnn / 4 < ffdnet_paper  # the paper's 96 x 12 would be over the budget


# ---- training ----


def test_shipped_recipe_parses_and_meets_its_budget() -> None:
    recipe = load_recipe(CONFIGS / "denoise.toml")
    assert (recipe.task, recipe.scale, recipe.data.degradation) == ("denoise", 1, "gaussian-noise")
    assert recipe.data.train[0].endswith("shared/data/images/train")
    assert [Path(p).name for p in recipe.data.report] == ["CBSD68", "Kodak24"]
    built = build_model(recipe)
    assert built.descriptor.task == "denoise"
    assert parameter_count(built.module) == 652_572
    assert conv_flops_per_pixel(built.module, 0.0) <= conv_flops_per_pixel(_cdncnn_b()) / 4


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scale": 2}, "task 'denoise' needs scale = 1"),
        (
            {"degradation": "bicubic"},
            "set data.degradation to one of gaussian-noise, compressed-noise, not 'bicubic'",
        ),
        ({**_SR, "degradation": "gaussian-noise"}, "'gaussian-noise' is for task = \"denoise\""),
        ({"task": "bogus"}, "task must be 'sr' or 'denoise'"),
    ],
)
def test_recipes_that_mix_the_tasks_are_refused(
    tmp_path: Path, data_root: Path, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_recipe(_recipe(tmp_path, data_root, **fields))


def test_architecture_must_suit_the_task(tmp_path: Path, data_root: Path) -> None:
    sr_ffdnet = _recipe(tmp_path, data_root, task="sr", degradation="bicubic")
    with pytest.raises(ConfigError, match="ffdnet model is a denoiser but the recipe's task is 'sr'"):
        build_model(load_recipe(sr_ffdnet))
    denoise_compact = _recipe(tmp_path, data_root, arch="compact", hp="num_feat = 8")
    with pytest.raises(ConfigError, match="compact model is a super-resolution model"):
        build_model(load_recipe(denoise_compact))
    odd = tmp_path / "odd.toml"
    odd.write_text(_recipe(tmp_path, data_root).read_text().replace("patch_size = 16", "patch_size = 15"))
    with pytest.raises(ConfigError, match=re.escape("multiple of 2; data.patch_size 15")):
        build_model(load_recipe(odd))


def test_noisy_patches_are_float_awgn_with_their_sigma() -> None:
    images = [np.random.default_rng(i).integers(0, 256, (40, 50, 3), dtype=np.uint8) for i in range(2)]
    ds = NoisyPatchDataset(images, patch_size=32, batch_size=64, noise=GaussianNoise(), seed=1)
    noisy, clean, sigma = ds.batch(5)
    assert noisy.shape == clean.shape == (64, 3, 32, 32) and sigma.shape == (64,)
    assert noisy.dtype == clean.dtype == sigma.dtype == torch.float32
    assert 0.0 <= float(sigma.min()) and float(sigma.max()) <= 75 / 255
    assert float(sigma.max()) > 60 / 255 and float(sigma.min()) < 15 / 255  # drawn over the range
    measured = (noisy - clean).std(dim=(1, 2, 3))
    assert torch.allclose(measured, sigma, rtol=0.1, atol=2e-3)
    assert float(noisy.min()) < 0.0 < 1.0 < float(noisy.max())  # not clipped
    assert not torch.equal(noisy * 255, torch.round(noisy * 255))  # nor rounded to 8 bits
    again = NoisyPatchDataset(images, patch_size=32, batch_size=64, noise=GaussianNoise(), seed=1)
    assert all(torch.equal(a, b) for a, b in zip(again.batch(5), (noisy, clean, sigma), strict=True))


def test_denoiser_trains_validates_exports_and_its_loss_falls(tmp_path: Path, data_root: Path) -> None:
    trainer = Trainer(load_recipe(_recipe(tmp_path, data_root)), tmp_path / "run")
    assert trainer.run().step == 4
    log = [json.loads(line) for line in (tmp_path / "run" / LOG_NAME).read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4] and "val_psnr_y" not in log[-1]
    assert log[-1]["val_psnr_rgb"] == pytest.approx(trainer.validate())
    out = tmp_path / "tiny.safetensors"
    trainer.export(out)
    meta = read_weights_metadata(out)
    assert (meta["task"], meta["architecture"], meta["scale"]) == ("denoise", "ffdnet", "1")
    assert int(meta["flops_per_input_pixel"]) == 2 * 9 * (13 * 16 + 1 * 16 * 16 + 16 * 12) // 4
    scored = evaluate_denoising(data_root / "val", str(out), sigma=25)
    assert set(meta["eval"]["val"]) == {"sigma15", "sigma25", "sigma50"}
    assert meta["eval"]["val"]["sigma25"]["psnr_rgb"] == pytest.approx(scored.mean_psnr_rgb, abs=1e-4)
    assert scored.mean_psnr_rgb == pytest.approx(trainer.validate(), abs=1e-4)  # val = eval protocol

    overfit = Trainer(load_recipe(_recipe(tmp_path, data_root, steps=1000)), tmp_path / "overfit")
    batch = overfit.data.batch(0)
    losses = [overfit.train_step(*batch).item() for _ in range(40)]
    # The first loss is the identity's (a fresh network predicts no noise), i.e. the noise's own
    # L1; white noise cannot be memorised, so the loss falls slowly, but all the way: measured,
    # 0.85 of it after 40 steps.
    assert np.mean(losses[-5:]) < 0.9 * losses[0], losses
    assert losses[-1] < losses[20] < losses[5], losses


def test_format_1_sr_checkpoint_without_a_task_resumes_and_exports(tmp_path: Path, data_root: Path) -> None:
    recipe = load_recipe(_recipe(tmp_path, data_root, **_SR))
    Trainer(recipe, tmp_path / "old").run(stop_at=1)
    state = load_checkpoint(tmp_path / "old")
    assert state is not None
    del state["recipe"]["task"]  # as written before recipes had a task
    save_checkpoint(tmp_path / "old", state)
    resumed = Trainer(recipe, tmp_path / "old", resume=True)
    assert resumed.step == 1 and resumed.run().step == 4
    state = load_checkpoint(tmp_path / "old")
    del state["recipe"]["task"]  # type: ignore[index]
    save_checkpoint(tmp_path / "old", state)  # type: ignore[arg-type]
    meta = export_run(tmp_path / "old", tmp_path / "old.safetensors", eval_folders=[])
    assert (meta["task"], meta["architecture"], meta["scale"]) == ("sr", "compact", "2")


# ---- evaluation ----


def test_noise_is_fixed_per_image_index_and_seed() -> None:
    clean = np.full((16, 16, 3), 128, dtype=np.uint8)
    a = add_gaussian_noise(clean, 25, index=3)
    assert np.array_equal(a, add_gaussian_noise(clean, 25, index=3))
    assert np.array_equal(a, 128 + 25 * np.random.default_rng((0, 3)).standard_normal((16, 16, 3)))
    assert not np.array_equal(a, add_gaussian_noise(clean, 25, index=4))
    assert not np.array_equal(a, add_gaussian_noise(clean, 25, index=3, seed=1))


def test_noisy_baseline_on_cbsd68(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "images" / "eval" / "CBSD68"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    for name in ("101085.png", "108005.png"):
        shutil.copy(folder / name, tmp_path / name)
    for sigma in (15, 25, 50):
        report = evaluate_denoising(tmp_path, "none", sigma=sigma)
        # unclipped noise of std sigma: PSNR = 20 log10(255 / sigma) up to the sample's spread
        assert report.mean_psnr_rgb == pytest.approx(20 * math.log10(255 / sigma), abs=0.03)
        assert all(0.0 < r.ssim_rgb < 1.0 for r in report.rows)
    assert report.rows[0].psnr_rgb == pytest.approx(14.14, abs=0.01)  # sigma 50, this protocol's noise
    assert mean_line(evaluate_denoising(tmp_path, "none", sigma=25)).startswith(
        "none (noisy input) at sigma 25 on 2 images: PSNR-RGB 20.17 dB"
    )


def test_model_denoiser_keeps_odd_sizes_and_scores_match_psnr(tmp_path: Path, data_root: Path) -> None:
    net = _random_ffdnet()
    save_file(net.state_dict(), tmp_path / "d.safetensors")
    denoise = ModelDenoiser(load_model(tmp_path / "d.safetensors"), device="cpu")
    clean = np.asarray(Image.open(data_root / "val" / "v0.png"))
    noisy = add_gaussian_noise(clean, 25, index=0)
    out = denoise(noisy, 25)
    assert out.shape == clean.shape == (25, 31, 3) and out.dtype == np.uint8
    report = evaluate_denoising(data_root / "val", str(tmp_path / "d.safetensors"), sigma=25)
    assert report.rows[0].psnr_rgb == psnr(out, clean)


def test_cli_eval_noise_tables_and_one_line_errors(tmp_path: Path, data_root: Path) -> None:
    model = tmp_path / "d.safetensors"
    save_file(_random_ffdnet().state_dict(), model)
    folder = str(data_root / "val")
    result = runner.invoke(app, ["eval", folder, "--noise", "25", "-m", str(model)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "| image | size | PSNR-RGB (dB) | SSIM-RGB |"
    assert [line.split(" | ")[:2] for line in lines[2:4]] == [["| v0.png", "31x25"], ["| v1.png", "31x25"]]
    assert lines[4].startswith("| **mean** |")
    assert lines[5].startswith("d.safetensors at sigma 25 on 2 images: PSNR-RGB ")

    baseline = runner.invoke(app, ["eval", folder, "--noise", "25", "--format", "json"])  # default: -m none
    assert baseline.exit_code == 0, baseline.output
    data = json.loads(baseline.stdout)
    assert data["model"] == "none (noisy input)" and data["sigma"] == 25 and data["seed"] == 0
    expected = evaluate_denoising(folder, "none", sigma=25)
    assert data["mean"]["psnr_rgb"] == pytest.approx(expected.mean_psnr_rgb)
    assert format_report(expected, "csv").splitlines()[0] == "image,width,height,psnr_rgb,ssim_rgb"

    sr_model = tmp_path / "sr.safetensors"
    save_file(SRVGGNetCompact(num_feat=4, num_conv=1, scale=2).state_dict(), sr_model)
    cases = [
        (["--noise", "25", "-m", str(sr_model)], 1, "is a x2 super-resolution model, not a denoiser"),
        (["-m", str(model)], 1, "is a denoiser, not a super-resolution model; evaluate it with --noise"),
        (["--noise", "25", "-m", "bicubic"], 2, "bicubic is a resizer, not a denoiser"),
        (["--noise", "25", "--scale", "2"], 2, "--scale 2 does not apply to --noise"),
        (["--noise", "-5"], 2, "noise sigma must be in (0, 255]"),
        (["-m", "none"], 2, "-m none is the noisy-input baseline of --noise"),
    ]
    for args, code, message in cases:
        result = runner.invoke(app, ["eval", folder, *args])
        assert result.exit_code == code, (args, result.output)
        assert message in _one_line_error(result.stderr), args
    with pytest.raises(ModelError, match="is a denoiser"):
        evaluate_folder(folder, str(model))


def test_compressed_noise_is_seeded_compressed_and_labelled_with_the_measured_level() -> None:
    from vsr.ops.noise import estimate_noise_sigma
    from vsr.train.denoise import CompressedNoise, make_noise

    assert isinstance(make_noise("compressed-noise"), CompressedNoise)
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    clean = torch.from_numpy(np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.5 + 0.3 * xx * yy])).float()
    clean = clean.expand(4, 3, 64, 64).contiguous()
    noise = CompressedNoise(sigma_max=30.0)
    noisy, sigma = noise(clean, np.random.default_rng(1))
    again, sigma_again = noise(clean, np.random.default_rng(1))
    assert torch.equal(noisy, again) and torch.equal(sigma, sigma_again)  # a pure function of the seed
    assert torch.equal(noisy, (noisy * 255).round() / 255)  # 8-bit, as decoded video is
    assert torch.allclose(sigma, estimate_noise_sigma(noisy))  # told what --denoise auto measures
    # compression alone, no noise: the frame changes (block artefacts) but stays close
    only_h264 = CompressedNoise(sigma_max=1e-6, h264_prob=1.0, crf=(40, 40))
    squashed, _ = only_h264(clean, rng)
    exact = torch.floor(clean * 255 + 0.5) / 255
    mse = float(((squashed - exact) ** 2).mean())
    assert 0 < mse and 10 * math.log10(1 / mse) > 30
    with pytest.raises(ValueError, match="compressed noise needs float32"):
        noise(clean.double(), rng)
