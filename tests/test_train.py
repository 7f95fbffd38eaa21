"""`vsr.train` and `vsr train`: recipes, data, losses, FLOPs, resumable runs and exported weights.

Everything runs on tiny synthetic images and an 8-feature network, so the whole file takes a few
seconds on a 2-core CPU; the real recipes are only loaded and measured, never trained here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from vsr.cli import app
from vsr.errors import ConfigError
from vsr.models import ARCHITECTURES, SRVGGNetCompact, load_model
from vsr.quality import degrade, evaluate_folder
from vsr.train import (
    AUGMENTATIONS,
    LOG_NAME,
    REQUIRED_METADATA,
    BicubicDegradation,
    LRFactor,
    PatchDataset,
    ScheduleSpec,
    Trainer,
    build_model,
    charbonnier_loss,
    conv_flops_per_pixel,
    dihedral,
    export_weights,
    l1_loss,
    load_checkpoint,
    load_image_bank,
    load_recipe,
    parameter_count,
    read_weights_metadata,
)
from vsr.train.losses import MSE_Y_CHROMA_WEIGHT, mse_loss, mse_y_loss

from training_images import make_training_root, smooth_image

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "train"
runner = CliRunner()

RECIPE = """
scale = 2
steps = {steps}
seed = 3
log_every = 2
val_every = 2
checkpoint_every = 100
{extra_top}
[model]
architecture = "compact"
num_feat = 8
num_conv = 1
[data]
root = "{root}"
train = ["train"]
val = "val"
report = ["val"]
patch_size = 16
batch = 4
[optimizer]
lr = 2e-3
[schedule]
warmup_steps = 1
{extra}
"""


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_training_root(tmp_path_factory.mktemp("data"))


def _recipe(tmp_path: Path, data_root: Path, *, steps: int = 4, extra: str = "", extra_top: str = "") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(RECIPE.format(steps=steps, root=data_root, extra=extra, extra_top=extra_top))
    return path


def _trainer(tmp_path: Path, data_root: Path, run: str, **kwargs: object) -> Trainer:
    return Trainer(load_recipe(_recipe(tmp_path, data_root)), tmp_path / run, **kwargs)  # type: ignore[arg-type]


def test_public_names_resolve() -> None:
    import vsr.train

    assert len(set(vsr.train.__all__)) == len(vsr.train.__all__)
    assert all(getattr(vsr.train, name, None) is not None for name in vsr.train.__all__)


def test_recipe_resolves_paths_and_names(tmp_path: Path, data_root: Path) -> None:
    recipe = load_recipe(_recipe(tmp_path, data_root))
    assert recipe.name == "tiny"
    assert recipe.data.train == (str(data_root / "train"),)
    assert recipe.data.val == str(data_root / "val")
    assert recipe.model.hyperparameters == {"num_feat": 8, "num_conv": 1}
    assert recipe.optimizer.betas == (0.9, 0.99)  # a default, kept when the table omits it


@pytest.mark.parametrize(
    ("extra_top", "extra", "named"),
    [
        ("epochs = 3", "", "'epochs'"),
        ("", "momentum = 0.9", "'schedule.momentum'"),
        ("", "[optimizer2]\nlr = 1", "'optimizer2'"),
    ],
)
def test_unknown_key_is_refused_by_name(
    tmp_path: Path, data_root: Path, extra_top: str, extra: str, named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        load_recipe(_recipe(tmp_path, data_root, extra=extra, extra_top=extra_top))


def test_unknown_model_key_and_bad_type(tmp_path: Path, data_root: Path) -> None:
    text = _recipe(tmp_path, data_root).read_text()
    bad_key = tmp_path / "bad_key.toml"
    bad_key.write_text(text.replace("num_conv = 1", "num_blocks = 1"))
    with pytest.raises(ConfigError, match=re.escape("'model.num_blocks'")):
        load_recipe(bad_key)
    bad_type = tmp_path / "bad_type.toml"
    bad_type.write_text(text.replace("batch = 4", 'batch = "4"'))
    with pytest.raises(ConfigError, match=re.escape("data.batch must be int")):
        load_recipe(bad_type)
    leaky = tmp_path / "leaky.toml"  # LeakyReLU has no tensors: its weights would load as ReLU
    leaky.write_text(text.replace("num_conv = 1", 'act_type = "leakyrelu"'))
    with pytest.raises(ConfigError, match="act_type=relu"):
        build_model(load_recipe(leaky))


@pytest.mark.parametrize(
    "name", ["fast-x2", "fast-x4", "fast-x2-ft", "fast-x4-ft", "compact-x2", "compact-x4"]
)
def test_shipped_recipes_meet_their_budgets(name: str) -> None:
    recipe = load_recipe(CONFIGS / f"{name}.toml")
    module = build_model(recipe).module
    per_frame = conv_flops_per_pixel(module) * 640 * 360
    params = parameter_count(module)
    assert recipe.scale == int(name.split("-")[1][1])
    assert recipe.data.train[0].endswith("shared/data/images/train")
    assert recipe.data.val.endswith("images/eval/Set5")
    if name.startswith("fast"):
        assert per_frame <= 10e9
    else:
        assert 0.55e6 <= params <= 0.65e6


def test_dihedral_gives_the_eight_symmetries() -> None:
    img = np.arange(12).reshape(3, 4)
    variants = [dihedral(img, code) for code in range(AUGMENTATIONS)]
    assert len({v.tobytes() + bytes(v.shape) for v in variants}) == 8
    assert np.array_equal(dihedral(img, 1), img[:, ::-1])
    assert np.array_equal(dihedral(img, 2), img[::-1])
    assert np.array_equal(dihedral(img, 6), np.rot90(img, -1))  # vertical flip + transpose: clockwise
    assert np.array_equal(dihedral(img, 5), np.rot90(img, 1))  # horizontal flip + transpose


def test_bicubic_degradation_is_the_eval_protocol_and_commutes_with_flips() -> None:
    rng = np.random.default_rng(5)
    hr = rng.integers(0, 256, (2, 3, 24, 32), dtype=np.uint8)
    lr = BicubicDegradation(2)(torch.from_numpy(hr), rng)
    expected = degrade(hr[0].transpose(1, 2, 0), 2).transpose(2, 0, 1) / 255.0
    assert torch.equal(lr[0].double(), torch.from_numpy(expected).float().double())
    for dims in ((-1,), (-2,), (-2, -1)):
        flipped = BicubicDegradation(2)(torch.from_numpy(np.ascontiguousarray(np.flip(hr, dims))), rng)
        assert torch.equal(flipped, torch.flip(lr, dims))
    transposed = BicubicDegradation(2)(torch.from_numpy(np.ascontiguousarray(hr.swapaxes(-1, -2))), rng)
    assert torch.equal(transposed, lr.transpose(-1, -2))


def _dataset(seed: int, images: list[np.ndarray]) -> PatchDataset:
    return PatchDataset(images, patch_size=8, batch_size=3, degradation=BicubicDegradation(2), seed=seed)


def test_batches_depend_only_on_seed_and_step() -> None:
    images = [np.random.default_rng(i).integers(0, 256, (20, 30, 3), dtype=np.uint8) for i in range(3)]
    a, b = _dataset(7, images), _dataset(7, images)
    lr3, hr3 = a.batch(3)
    b.batch(0)
    lr3b, hr3b = b.batch(3)  # another history, same step: same batch
    assert torch.equal(lr3, lr3b) and torch.equal(hr3, hr3b)
    assert lr3.shape == (3, 3, 4, 4) and hr3.shape == (3, 3, 8, 8)
    assert not torch.equal(hr3, a.batch(4)[1])
    assert not torch.equal(hr3, _dataset(8, images).batch(3)[1])


def test_patches_are_augmented_crops_of_the_images() -> None:
    img = np.random.default_rng(1).integers(0, 256, (12, 14, 3), dtype=np.uint8)
    ds = _dataset(0, [img])
    crops = [img[top : top + 8, left : left + 8] for top in range(12 - 7) for left in range(14 - 7)]
    codes_seen = set()
    for index in range(40):
        patch = ds.hr_patch(index)
        codes = {
            c for c in range(AUGMENTATIONS) for crop in crops if np.array_equal(patch, dihedral(crop, c))
        }
        assert codes, f"patch {index} is no flip or rotation of any crop"
        codes_seen |= codes
    assert codes_seen == set(range(AUGMENTATIONS))


def test_jpegs_are_shrunk_once_and_lossless_images_kept(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    smooth_image(rng, (64, 48)).save(tmp_path / "a.jpg", quality=95)
    smooth_image(rng, (30, 20)).save(tmp_path / "b.png")
    (tmp_path / "copyright").write_text("not an image")
    bank = load_image_bank([tmp_path], lossy_downscale=2, min_side=8)
    assert [a.shape for a in bank] == [(24, 32, 3), (20, 30, 3)]
    assert not bank[0].flags.writeable


def test_losses_match_hand_values() -> None:
    pred = torch.tensor([0.0, 0.5, 1.0])
    target = torch.tensor([0.0, 0.25, 0.0])
    assert l1_loss(pred, target).item() == pytest.approx((0.25 + 1.0) / 3)
    eps = 1e-3
    expected = (eps + math.sqrt(0.25**2 + eps**2) + math.sqrt(1 + eps**2)) / 3
    assert charbonnier_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)


def test_mse_losses_match_hand_values() -> None:
    target = torch.zeros(1, 3, 2, 2)
    grey = target + 0.1  # the same step in R, G and B moves Y alone: 0.1 x 219/255
    assert mse_loss(grey, target).item() == pytest.approx(0.01)
    assert mse_y_loss(grey, target).item() == pytest.approx((0.1 * 219 / 255) ** 2, rel=1e-5)
    # A step of Cb alone (the inverse of rgb2ycbcr's matrix applied to (0, 0.1, 0)) weighs 0.1.
    m = torch.tensor([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255
    step = torch.linalg.solve(m, torch.tensor([0.0, 0.1, 0.0]))
    blue = target + step.view(1, 3, 1, 1)
    assert mse_y_loss(blue, target).item() == pytest.approx(MSE_Y_CHROMA_WEIGHT * 0.01, rel=1e-4)


def test_init_from_fine_tunes_exported_weights(tmp_path: Path, data_root: Path) -> None:
    base = load_recipe(_recipe(tmp_path, data_root))
    start = build_model(base, seed=5).module  # other weights than the recipe's own seed gives
    (tmp_path / "runs").mkdir()
    export_weights(start, tmp_path / "runs" / "l1.safetensors", recipe=base, steps=0)
    top = 'init_from = "runs/l1.safetensors"\nloss = "mse-y"'
    recipe = load_recipe(_recipe(tmp_path, data_root, extra_top=top))
    assert recipe.init_from == str(tmp_path / "runs" / "l1.safetensors") and recipe.loss == "mse-y"
    trainer = Trainer(recipe, tmp_path / "ft")
    for got in (trainer.model.state_dict(), trainer.ema.module.state_dict()):
        assert all(torch.equal(got[k].float(), v.float()) for k, v in start.state_dict().items())
    trainer.run()
    trainer.export(tmp_path / "ft.safetensors")  # the shipped metadata names the start, not this machine
    assert (
        read_weights_metadata(tmp_path / "ft.safetensors")["training"]["init_from"] == "runs/l1.safetensors"
    )

    for top, message in [
        ('init_from = "runs/none.safetensors"', "init_from .*none.safetensors not found; export the run"),
        ('init_from = "runs/l1.pt"', "init_from must be a .safetensors file"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Trainer(load_recipe(_recipe(tmp_path, data_root, extra_top=top)), tmp_path / "bad")


def test_init_from_a_smaller_scale_starts_as_that_model_enlarged(tmp_path: Path, data_root: Path) -> None:
    x2 = load_recipe(_recipe(tmp_path, data_root))
    start = build_model(x2, seed=5).module
    (tmp_path / "runs").mkdir()
    export_weights(start, tmp_path / "runs" / "x2.safetensors", recipe=x2, steps=0)
    top = 'init_from = "runs/x2.safetensors"'
    x4 = load_recipe(_recipe(tmp_path, data_root, extra_top=top)).replace(scale=4)
    trainer = Trainer(x4, tmp_path / "x4")
    assert trainer.descriptor.scale == 4
    x = torch.rand(1, 3, 11, 14)
    with torch.no_grad():
        expected = nn.functional.interpolate(start.eval()(x), scale_factor=2, mode="nearest")
        got = trainer.model.eval()(x)
    assert got.shape == (1, 3, 44, 56)
    assert torch.allclose(got, expected, atol=1e-6)  # step 0 is the x2 model, then a nearest x2
    # a scale it does not divide, or other hyperparameters, is still the one-line refusal
    x3 = x4.replace(scale=3, data=dataclasses.replace(x4.data, patch_size=18))
    with pytest.raises(ConfigError, match=r"x2 .* the recipe trains compact x3"):
        Trainer(x3, tmp_path / "x3")


def test_lr_schedules() -> None:
    cosine = LRFactor(
        ScheduleSpec(name="cosine", warmup_steps=10, min_lr=1e-4), total_steps=110, base_lr=1e-3
    )
    assert cosine(0) == pytest.approx(0.1) and cosine(9) == pytest.approx(1.0)
    assert cosine(60) == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the decay
    assert cosine(110) == pytest.approx(0.1)
    step = LRFactor(ScheduleSpec(name="step", milestones=(5, 8), gamma=0.5), total_steps=10, base_lr=1.0)
    assert [step(s) for s in (0, 4, 5, 7, 8, 9)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_flops_of_known_networks() -> None:
    # 3->4, 4->4 and 4->12 3x3 convs at input resolution: 2 * 9 * (3*4 + 4*4 + 4*12) per pixel.
    assert conv_flops_per_pixel(SRVGGNetCompact(num_feat=4, num_conv=1, scale=2)) == 2 * 9 * (12 + 16 + 48)
    # A stride-2 conv has a quarter of the outputs; groups divide the inputs each output sees.
    strided = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 1, groups=4))
    assert conv_flops_per_pixel(strided) == (2 * 27 * 8 + 2 * 2 * 8) / 4
    assert conv_flops_per_pixel(nn.ConvTranspose2d(3, 5, 4, stride=2, padding=1)) == 2 * 3 * 5 * 16


def test_resumed_run_equals_uninterrupted_run(tmp_path: Path, data_root: Path) -> None:
    straight = _trainer(tmp_path, data_root, "straight")
    assert straight.run().reason == "done"
    first = _trainer(tmp_path, data_root, "resumed")
    assert first.run(stop_at=2).step == 2
    resumed = _trainer(tmp_path, data_root, "resumed", resume=True)
    assert resumed.step == 2
    assert resumed.run().step == 4
    # Same ops on the same thread count in the same order: equal to the bit, not merely close.
    for a, b in ((straight.model, resumed.model), (straight.ema.module, resumed.ema.module)):
        for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.equal(x, y), f"{key} differs after resuming"
    assert straight.optimizer.param_groups[0]["lr"] == resumed.optimizer.param_groups[0]["lr"]
    log = [json.loads(line) for line in (tmp_path / "resumed" / LOG_NAME).read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]  # one record per log interval, none repeated
    assert log[-1]["val_psnr_y"] == pytest.approx(resumed.validate())


def test_resume_refuses_another_recipe_and_a_fresh_start_refuses_a_used_folder(
    tmp_path: Path, data_root: Path
) -> None:
    _trainer(tmp_path, data_root, "run").run(stop_at=1)
    with pytest.raises(ConfigError, match="--resume"):
        _trainer(tmp_path, data_root, "run")
    other = load_recipe(_recipe(tmp_path, data_root)).replace(seed=4)
    with pytest.raises(ConfigError, match="seed"):
        Trainer(other, tmp_path / "run", resume=True)


def test_loss_falls_when_overfitting_one_batch(tmp_path: Path, data_root: Path) -> None:
    # A long run's schedule, so the 30 steps are all at (nearly) the full learning rate.
    trainer = _trainer(tmp_path, data_root, "overfit", steps=1000)
    lr, hr = trainer.data.batch(0)
    losses = [trainer.train_step(lr, hr).item() for _ in range(30)]
    # Measured: the last five average 0.63 of the first five, falling steadily all the way.
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
    assert losses[-1] < losses[15] < losses[5], losses


def test_time_budget_and_stop_request_leave_a_checkpoint(tmp_path: Path, data_root: Path) -> None:
    timed = _trainer(tmp_path, data_root, "timed")
    result = timed.run(max_minutes=0.01)  # 0.6 s: less than the loop's first estimate of a step + save
    assert result.reason == "time" and result.step < 4
    assert load_checkpoint(tmp_path / "timed")["step"] == result.step  # type: ignore[index]

    stopped = _trainer(tmp_path, data_root, "stopped", on_record=lambda record: stopped.request_stop())
    result = stopped.run()
    assert result.reason == "interrupted" and result.step == 2  # the first record is at step 2
    assert load_checkpoint(tmp_path / "stopped")["step"] == 2  # type: ignore[index]


def test_diverged_loss_stops_without_checkpointing_it(tmp_path: Path, data_root: Path) -> None:
    trainer = _trainer(tmp_path, data_root, "nan")
    trainer.loss_fn = lambda pred, target: (pred - target).abs().mean() * float("nan")
    with pytest.raises(ConfigError, match="loss became nan"):
        trainer.run()
    assert load_checkpoint(tmp_path / "nan") is None


def test_exported_weights_load_and_match_the_trained_module(tmp_path: Path, data_root: Path) -> None:
    trainer = _trainer(tmp_path, data_root, "export")
    trainer.run()
    path = tmp_path / "tiny.safetensors"
    trainer.export(path)
    loaded = load_model(path)
    assert loaded.descriptor.architecture == "compact" and loaded.descriptor.scale == 2
    assert loaded.descriptor.hyperparameters["num_feat"] == 8
    x = torch.rand(1, 3, 20, 24)
    reference = SRVGGNetCompact(num_feat=8, num_conv=1, scale=2).eval()
    reference.load_state_dict(trainer.ema.module.state_dict())
    with torch.no_grad():
        assert torch.equal(loaded.module(x), reference(x))
    meta = read_weights_metadata(path)
    assert set(REQUIRED_METADATA) <= set(meta)
    assert meta["recipe"] == "tiny" and meta["steps"] == "4" and meta["scale"] == "2"
    assert (
        int(meta["parameters"])
        == parameter_count(reference)
        == 3 * 8 * 9 + 8 + 8 * 8 * 9 + 8 + 8 * 12 * 9 + 12 + 16
    )
    assert int(meta["flops_per_input_pixel"]) == 2 * 9 * (3 * 8 + 8 * 8 + 8 * 12)
    scored = evaluate_folder(data_root / "val", str(path))
    assert meta["eval"]["val"]["psnr_y"] == pytest.approx(scored.mean_psnr_y, abs=1e-4)
    assert ARCHITECTURES.detect(loaded.module.state_dict()).id == "compact"  # type: ignore[union-attr]


def test_a_realistic_recipe_export_also_scores_realistic_inputs(tmp_path: Path, data_root: Path) -> None:
    trainer = _trainer(tmp_path, data_root, "export-real")
    trainer.run()
    recipe = trainer.recipe
    real = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, degradation="realistic"))
    folder = str(data_root / "val")
    plain = export_weights(
        trainer.ema.module, tmp_path / "b.safetensors", recipe=recipe, steps=4, eval_folders=[folder]
    )
    meta = export_weights(
        trainer.ema.module, tmp_path / "r.safetensors", recipe=real, steps=4, eval_folders=[folder]
    )
    assert "realistic" not in json.loads(plain["eval"])["val"]
    scores = json.loads(meta["eval"])["val"]
    scored = evaluate_folder(folder, str(tmp_path / "r.safetensors"), degradation="realistic", seed=0)
    assert scores["realistic"]["seed"] == 0
    assert scores["realistic"]["psnr_y"] == pytest.approx(scored.mean_psnr_y, abs=1e-4)
    assert scores["realistic"]["gradient_ratio"] == pytest.approx(scored.gradient_ratio, abs=1e-4)
    assert scores["realistic"]["psnr_y"] != scores["psnr_y"]  # the inputs differ
    assert scores["psnr_y"] == json.loads(plain["eval"])["val"]["psnr_y"]


def test_cli_trains_exports_and_reports_errors_in_one_line(tmp_path: Path, data_root: Path) -> None:
    recipe = str(_recipe(tmp_path, data_root))
    run = str(tmp_path / "cli-run")
    out = tmp_path / "cli.safetensors"
    result = runner.invoke(app, ["train", recipe, "--run-dir", run, "--steps", "2", "--export", str(out)])
    assert result.exit_code == 0, result.output
    assert "stopped (done) at step 2/2" in result.stderr
    assert read_weights_metadata(out)["steps"] == "2"

    again = runner.invoke(app, ["train", recipe, "--run-dir", run])
    assert again.exit_code == 2
    assert again.stderr.strip().splitlines() == [
        f"vsr: error: {run} already holds a run at step 2; pass --resume to continue it or choose another --run-dir"
    ]
    only = tmp_path / "only.safetensors"
    result = runner.invoke(app, ["train", "--export-only", "--run-dir", run, "--export", str(only)])
    assert result.exit_code == 0, result.output
    assert only.read_bytes() == out.read_bytes()

    bad = tmp_path / "bad.toml"
    bad.write_text(Path(recipe).read_text().replace("seed = 3", "seeds = 3"))
    result = runner.invoke(app, ["train", str(bad), "--run-dir", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "'seeds'" in result.stderr


def test_sigterm_checkpoints_and_exits_130(tmp_path: Path, data_root: Path) -> None:
    recipe = _recipe(tmp_path, data_root, steps=100_000)
    run = tmp_path / "signalled"
    code = "from vsr.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "train", str(recipe), "--run-dir", str(run)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (run / LOG_NAME).is_file() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("vsr: error: training interrupted at step")
    state = load_checkpoint(run)
    assert state is not None and 2 <= state["step"] < 100_000
