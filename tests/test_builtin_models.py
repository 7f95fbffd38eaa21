"""Built-in weights: the shipped files' metadata and hashes, their quality, and what `auto` picks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from vsr.cli import app
from vsr.errors import ModelError
from vsr.models import SRVGGNetCompact, load_model
from vsr.models.builtin import (
    DENOISERS,
    WEIGHTS_DIR,
    builtin_denoiser,
    builtin_weights,
    default_builtin,
    file_sha256,
    load_builtin,
    read_index,
    read_weights_metadata,
    write_index,
)
from vsr.quality import (
    EvalReport,
    evaluate_folder,
    folder_pairs,
    named_upscaler,
    phase_pattern,
)
from vsr.quality.denoising import evaluate_denoising
from vsr.train import REQUIRED_METADATA

runner = CliRunner()
MAX_BYTES = 5_000_000  # the issue's limit for a shipped weight file

# Set5 and Set14 Y-PSNR each shipped model must reach (the issue's targets). The shared Set14 copy
# scores bicubic 0.08 dB (x2) and 0.09 dB (x4) above the published figures, so its targets carry
# that offset, as the issue says.
TARGETS = {
    "fast-x2": {"Set5": 37.00, "Set14": 32.63 + 0.08},
    "fast-x4": {"Set5": 30.71, "Set14": 27.59 + 0.09},
    "compact-x2": {"Set5": 37.6, "Set14": 33.1 + 0.08},
    "compact-x4": {"Set5": 31.6, "Set14": 28.2 + 0.09},
}
# What this repository ships today; each entry has a target above or is checked elsewhere.
SHIPPED = sorted(read_index())


def test_index_lists_exactly_the_files_that_ship() -> None:
    files = sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors")) if WEIGHTS_DIR.is_dir() else []
    assert SHIPPED == files


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_have_complete_metadata_and_their_hash(name: str) -> None:
    w = builtin_weights()[name]
    assert file_sha256(w.path) == w.sha256 == read_index()[name]["sha256"]
    assert w.path.stat().st_size == w.bytes <= MAX_BYTES
    assert set(REQUIRED_METADATA) <= set(w.metadata)
    assert w.metadata["format"] == "vsr-weights/1"
    if w.metadata["task"] == "denoise":
        assert name in DENOISERS and w.scale == 1
    else:
        assert name.endswith(f"-x{w.scale}")
    loaded = load_model(name)
    d = loaded.descriptor
    assert (d.name, d.scale, d.architecture) == (name, w.scale, w.metadata["architecture"])
    assert d.parameters == int(w.metadata["parameters"])
    assert d.hyperparameters == w.metadata["hyperparameters"]
    # the recorded scores name the report folders of its recipe
    assert set(w.metadata["eval"]) == {Path(p).name for p in w.metadata["training"]["data"]["report"]}


# What each shipped file measured on Set5 when it was trained (docs/MODELS.md): a floor below which
# a re-export or a change in the evaluation code must not fall. Where it is below the issue's
# target, the target test below is an expected failure, with the gap in its reason.
SHIPPED_FLOOR = {"fast-x2": 37.05, "fast-x4": 30.70, "compact-x2": 37.40, "compact-x4": 31.33}
SHORT_OF_TARGET: dict[str, str] = {
    "compact-x2": "compact-x2: Set5 37.42 dB, short of the 37.6 target after a 13.5k-step CPU round and an MSE-Y fine-tune (docs/MODELS.md)",
    "compact-x4": "compact-x4: Set5 31.35 dB, short of the 31.6 target after two CPU rounds from compact-x2 and an MSE-Y fine-tune (docs/MODELS.md)",
}


@pytest.mark.parametrize("name", [n for n in SHIPPED if n in TARGETS])
def test_shipped_models_beat_bicubic_on_set5_by_their_recorded_margin(name: str, shared_data: Path) -> None:
    w = builtin_weights()[name]
    report = evaluate_folder(shared_data / "images" / "eval" / "Set5", name, precision="fp32")
    # the metadata's figure is the one measured on this file by the same code
    assert report.mean_psnr_y == pytest.approx(w.metadata["eval"]["Set5"]["psnr_y"], abs=1e-3)
    bicubic = evaluate_folder(shared_data / "images" / "eval" / "Set5", "bicubic", scale=w.scale)
    floor = SHIPPED_FLOOR.get(name, TARGETS[name]["Set5"])
    assert report.mean_psnr_y - bicubic.mean_psnr_y >= floor - {2: 33.66, 4: 28.42}[w.scale] - 0.02


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=SHORT_OF_TARGET[n], strict=True))
        if n in SHORT_OF_TARGET
        else n
        for n in SHIPPED
        if n in TARGETS
    ],
)
def test_shipped_models_reach_the_issue_targets(name: str) -> None:
    scores = builtin_weights()[name].metadata["eval"]
    assert scores["Set5"]["psnr_y"] >= TARGETS[name]["Set5"]
    assert scores["Set14"]["psnr_y"] >= TARGETS[name]["Set14"]


# The denoiser: CBSD68 at sigma 25, RGB PSNR (the colour AWGN protocol), the issue's target; and
# the Set5 sigma 25 figure measured on the shipped file (docs/MODELS.md) as a floor for re-exports.
DENOISE_TARGET = 30.9
DENOISE_SET5_FLOOR = {
    "denoise": 30.42,
    "denoise-lite": 30.44,
}  # measured: 30.51 (denoise-ft3), 30.53 (denoise-lite-ft)
DENOISE_SHORT = "CBSD68 sigma 25 short of the 30.9 dB target (docs/MODELS.md)"
SHIPPED_DENOISERS = [n for n in SHIPPED if builtin_weights()[n].metadata.get("task") == "denoise"]


@pytest.mark.parametrize("name", SHIPPED_DENOISERS)
def test_the_shipped_denoiser_beats_the_noisy_input_on_set5(name: str, shared_data: Path) -> None:
    set5 = shared_data / "images" / "eval" / "Set5"
    ours = evaluate_denoising(set5, name, sigma=25, device="cpu", precision="fp32")
    noisy = evaluate_denoising(set5, "none", sigma=25)
    assert ours.mean_psnr_rgb >= DENOISE_SET5_FLOOR[name]
    assert ours.mean_psnr_rgb - noisy.mean_psnr_rgb >= 8.0  # about 20.2 dB noisy at sigma 25
    assert load_builtin(name).descriptor.task == "denoise"
    # at most a quarter of colour DnCNN's 1,334,016 FLOP per pixel
    assert int(builtin_weights()[name].metadata["flops_per_input_pixel"]) <= 1_334_016 / 4


@pytest.mark.parametrize("name", SHIPPED_DENOISERS)
def test_the_shipped_denoiser_reaches_the_cbsd68_target(name: str) -> None:
    score = builtin_weights()[name].metadata["eval"]["CBSD68"]["sigma25"]["psnr_rgb"]
    if score < DENOISE_TARGET:
        pytest.xfail(f"{name}: {DENOISE_SHORT}: {score:.2f} dB")
    assert score >= DENOISE_TARGET


# Models for real video, judged on Set14 made low-resolution by the realistic chain (`vsr eval
# --degradation realistic --seed 0`, the figures each export records under "realistic"). A GAN
# model against the PSNR model trained on the same degradations: sharper (mean gradient magnitude
# nearer the truth's), Y-PSNR within 1.5 dB, no colour shift (the issue's bars). The PSNR model
# for real video against the bicubic-trained one of its scale, which sharpens the artefacts.
#
# compact-real-x4, gan-x4's PSNR stage, does not ship (it is smoother than bicubic and 0.81 dB over
# it, below the 1 dB asked of a real-video PSNR model, docs/MODELS.md); its export is kept under
# tests/reference/ only to judge gan-x4 against.
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
GAN_PSNR_MODEL = {"gan-x2": "compact-real-x2", "gan-x4": str(REFERENCE_DIR / "compact-real-x4.safetensors")}
REAL_VIDEO_BASELINE = {"compact-real-x2": "compact-x2", "compact-real-x4": "compact-x4"}


def _realistic_set14(shared_data: Path, model: str, scale: int | None = None) -> EvalReport:
    folder = shared_data / "images" / "eval" / "Set14"
    report = evaluate_folder(folder, model, scale=scale, precision="fp32", degradation="realistic", seed=0)
    if model in SHIPPED:
        recorded = builtin_weights()[model].metadata["eval"]["Set14"].get("realistic")
    elif model.endswith(".safetensors"):  # a reference export under tests/reference/
        recorded = read_weights_metadata(model)["eval"]["Set14"]["realistic"]
    else:
        recorded = None
    if recorded is not None:  # a realistic recipe's export records it: this file's, by this code
        assert report.mean_psnr_y == pytest.approx(recorded["psnr_y"], abs=1e-3)
        assert report.gradient_ratio == pytest.approx(recorded["gradient_ratio"], abs=1e-3)
    return report


@pytest.mark.parametrize("name", [n for n in SHIPPED if n in GAN_PSNR_MODEL])
def test_gan_models_are_sharper_than_their_psnr_model_within_1_5_db(name: str, shared_data: Path) -> None:
    reference = GAN_PSNR_MODEL[name]
    assert reference in SHIPPED or Path(reference).is_file(), (
        f"{name} ships without {reference}, the PSNR model it is judged against"
    )
    gan, psnr = _realistic_set14(shared_data, name), _realistic_set14(shared_data, reference)
    assert gan.gradient_ratio is not None and psnr.gradient_ratio is not None
    assert abs(1 - gan.gradient_ratio) < abs(1 - psnr.gradient_ratio) - 0.05
    assert gan.mean_psnr_y >= psnr.mean_psnr_y - 1.5
    assert gan.colour_offset is not None and max(abs(c) for c in gan.colour_offset) < 1.0


# No checkerboard: a GAN fine-tune may not add a grid of its scale's period that its PSNR model
# does not have (`vsr.quality.phase_pattern` on realistic Set5, seed 0; gan-x2 +0.04 over
# compact-real-x2, gan-x4 +0.05 over compact-real-x4; the gan-x4 CPU rounds trained without
# gan.phase_weight were +0.45 to +0.70 and did not ship, docs/MODELS.md).
MAX_GAN_PHASE_PATTERN_GAIN = 0.15


def _realistic_phase_pattern(set5: Path, model: str, scale: int) -> float:
    upscale = named_upscaler(model, scale, "cpu", "fp32")[0]
    scores = []
    for _, hr, lr in folder_pairs(set5, scale, degradation="realistic", seed=0):
        scores.append(phase_pattern(upscale(lr), hr, scale))
    return float(np.mean(scores))


@pytest.mark.parametrize("name", [n for n in SHIPPED if n in GAN_PSNR_MODEL])
def test_gan_models_add_no_sub_pixel_grid_to_their_psnr_model(name: str, shared_data: Path) -> None:
    set5, scale = shared_data / "images" / "eval" / "Set5", builtin_weights()[name].scale
    gan = _realistic_phase_pattern(set5, name, scale)
    psnr = _realistic_phase_pattern(set5, GAN_PSNR_MODEL[name], scale)
    assert gan <= psnr + MAX_GAN_PHASE_PATTERN_GAIN, (gan, psnr)


@pytest.mark.parametrize("name", [n for n in SHIPPED if n in REAL_VIDEO_BASELINE])
def test_real_video_psnr_models_beat_bicubic_and_the_bicubic_trained_model(
    name: str, shared_data: Path
) -> None:
    ours = _realistic_set14(shared_data, name)
    bicubic = _realistic_set14(shared_data, "bicubic", builtin_weights()[name].scale)
    assert ours.mean_psnr_y >= bicubic.mean_psnr_y + 1.0
    baseline = REAL_VIDEO_BASELINE[name]
    if baseline in SHIPPED:
        assert ours.mean_psnr_y >= _realistic_set14(shared_data, baseline).mean_psnr_y + 1.0
    assert ours.colour_offset is not None and max(abs(c) for c in ours.colour_offset) < 1.0


def _ship(folder: Path, name: str, scale: int) -> None:
    module = SRVGGNetCompact(num_feat=4, num_conv=1, scale=scale)
    meta = {"format": "vsr-weights/1", "scale": str(scale), "architecture": "compact"}
    save_file(module.state_dict(), str(folder / f"{name}.safetensors"), metadata=meta)


def test_auto_prefers_the_device_family_then_the_nearest_scale_above(tmp_path: Path) -> None:
    assert default_builtin(2, "cpu", tmp_path) is None  # nothing ships: the caller falls back
    for name, scale in [("fast-x2", 2), ("compact-x2", 2), ("compact-x4", 4), ("gan-x4", 4)]:
        _ship(tmp_path, name, scale)
    write_index(tmp_path)
    pick = {
        (s, dev): default_builtin(s, dev, tmp_path).name for s in (1, 2, 3, 4, 8) for dev in ("cpu", "cuda")
    }  # type: ignore[union-attr]
    assert pick == {
        (1, "cpu"): "fast-x2",
        (1, "cuda"): "compact-x2",
        (2, "cpu"): "fast-x2",
        (2, "cuda"): "compact-x2",
        (3, "cpu"): "compact-x4",  # no fast-x4: the other family, never the GAN model
        (3, "cuda"): "compact-x4",
        (4, "cpu"): "compact-x4",
        (4, "cuda"): "compact-x4",
        (8, "cpu"): "compact-x4",  # the largest there is; the pipeline resizes its output
        (8, "cuda"): "compact-x4",
    }


def test_a_damaged_builtin_is_refused_by_its_hash(tmp_path: Path) -> None:
    _ship(tmp_path, "fast-x2", 2)
    index = write_index(tmp_path)
    assert load_builtin("fast-x2", tmp_path).descriptor.name == "fast-x2"
    path = tmp_path / "fast-x2.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"built-in model fast-x2 is damaged: .* has sha256 .*reinstall vsr"):
        load_builtin("fast-x2", tmp_path)
    assert json.loads((tmp_path / "index.json").read_text()) == index
    with pytest.raises(ModelError, match=r"no built-in model 'fast-x9'; shipped: fast-x2"):
        load_builtin("fast-x9", tmp_path)


def test_models_command_lists_shipped_and_classic_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [m["name"] for m in listed["models"]] == SHIPPED
    assert all(m["sha256_ok"] for m in listed["models"])
    assert listed["classic"] == ["bicubic", "lanczos"]
    expected_cpu_x2 = default_builtin(2, "cpu")
    assert listed["auto"]["cpu"]["2"] == (expected_cpu_x2.name if expected_cpu_x2 else "lanczos")

    # A damaged file is flagged and the command fails.
    folder = tmp_path / "weights"
    folder.mkdir()
    _ship(folder, "fast-x2", 2)
    write_index(folder)
    (folder / "fast-x2.safetensors").write_bytes(
        (folder / "fast-x2.safetensors").read_bytes()[:-4] + b"\0\0\0\0"
    )
    monkeypatch.setattr("vsr.cli.models.builtin_weights", lambda: builtin_weights(folder))
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 1
    assert "DAMAGED (sha256 differs: reinstall vsr)" in result.stdout


def test_upscale_auto_without_builtins_falls_back_to_lanczos_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vsr.pipeline.plan import resolve_model

    monkeypatch.setattr("vsr.pipeline.plan.default_builtin", lambda scale, device: None)
    loaded, notes = resolve_model("auto", 4, "cpu")
    assert (loaded.descriptor.architecture, loaded.descriptor.scale) == ("lanczos", 4)
    assert notes == ["no trained built-in model is installed: using lanczos; pass --model CHECKPOINT for SR"]


def test_upscale_auto_runs_the_shipped_model_for_the_scale() -> None:
    from vsr.pipeline.plan import resolve_model

    expected = default_builtin(2, "cpu")
    if expected is None:
        pytest.skip("no built-in model ships yet")
    loaded, notes = resolve_model("auto", None, "cpu")
    assert loaded.descriptor.name == expected.name and notes == []
    reference = load_model(expected.name)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), reference.module(x))


def test_the_pre_pass_runs_the_lite_denoiser_at_under_a_fifth_of_the_sr_models_cost() -> None:
    """Issue 5: the pre-pass may add at most 20 % to the Restore stage. Both run on the same LR
    pixels at the same throughput (tools/bench_denoise_share.py: time follows FLOPs), so the
    denoiser's FLOPs per pixel must stay under a fifth of the x2 compact models' (denoise: 0.27)."""
    assert builtin_denoiser() == "denoise-lite"
    flops = {n: int(builtin_weights()[n].metadata["flops_per_input_pixel"]) for n in SHIPPED}
    for sr in ("compact-x2", "gan-x2", "compact-real-x2"):
        assert flops["denoise-lite"] <= 0.2 * flops[sr]
    assert flops["denoise"] > 0.2 * flops["compact-x2"]  # why the lite one is the default
