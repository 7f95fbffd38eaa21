"""GAN fine-tuning in `vsr.train`: the [gan] recipe table, adversarial and pixel-side losses, the
discriminator's share of a step, exact resumption, exports without the discriminator, init_from,
and the sharpness statistic of `vsr.quality`.

Tiny synthetic images, an 8-feature generator and an 8-feature discriminator: seconds on one core.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from typer.testing import CliRunner

from vsr.cli import app
from vsr.errors import ConfigError
from vsr.models import load_model
from vsr.quality import gradient_ratio, ssim
from vsr.train import (
    LOG_NAME,
    Trainer,
    UNetDiscriminatorSN,
    build_model,
    export_run,
    export_weights,
    gradient_loss,
    hinge_d_loss,
    hinge_g_loss,
    load_checkpoint,
    load_recipe,
    phase_loss,
    ragan_d_loss,
    ragan_g_loss,
    read_weights_metadata,
    recipe_from_dict,
    save_checkpoint,
    ssim_loss,
)
from vsr.train.checkpoint import check_resumable

from training_images import make_training_root, smooth_image

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "train"

RECIPE = """
scale = 2
steps = {steps}
seed = 3
log_every = 2
val_every = 2
checkpoint_every = 100
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
{gan}
"""

GAN = """
[gan]
loss = "{loss}"
pixel_weight = 1.0
gradient_weight = 0.5
ssim_weight = 0.5
phase_weight = 0.5
phase_block = 8
adversarial_weight = 0.1
d_num_feat = 8
d_lr = 1e-3
d_warmup_steps = {warmup}
{extra}
"""


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_training_root(tmp_path_factory.mktemp("data"))


def _recipe(
    tmp_path: Path,
    data_root: Path,
    *,
    steps: int = 4,
    loss: str = "ragan",
    warmup: int = 0,
    extra: str = "",
    gan: bool = True,
    name: str = "tiny-gan",
) -> Path:
    path = tmp_path / f"{name}.toml"
    table = GAN.format(loss=loss, warmup=warmup, extra=extra) if gan else ""
    path.write_text(RECIPE.format(steps=steps, root=data_root, gan=table))
    return path


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- recipes -------------------------------------------------------------------------------------


def test_gan_table_parses_and_round_trips(tmp_path: Path, data_root: Path) -> None:
    recipe = load_recipe(_recipe(tmp_path, data_root, extra='init_from = "weights/psnr.safetensors"'))
    g = recipe.gan
    assert g is not None and g.loss == "ragan" and g.d_num_feat == 8 and g.d_betas == (0.9, 0.99)
    assert (g.pixel_weight, g.gradient_weight, g.ssim_weight, g.adversarial_weight) == (1.0, 0.5, 0.5, 0.1)
    # relative to the recipe file, not to the data root
    assert g.init_from == str(tmp_path / "weights" / "psnr.safetensors")
    again = recipe_from_dict(json.loads(json.dumps(recipe.to_dict())), name=recipe.name)
    assert again == recipe
    assert load_recipe(_recipe(tmp_path, data_root, gan=False, name="plain")).gan is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("d_steps = 2", "unknown key 'gan.d_steps'"),
        ("perceptual_weight = 1.0", "unknown key 'gan.perceptual_weight'"),
        ('d_betas = [0.9, "x"]', "gan.d_betas must be"),
        ("ssim_weight = -1", "gan.ssim_weight must be >= 0"),
        ("phase_weight = -1", "gan.phase_weight must be >= 0"),
        (
            "phase_block = 32",
            "gan.phase_block 32 must be a multiple of the scale (2) that divides data.patch_size (16)",
        ),
        ("phase_block = 5", "gan.phase_block 5 must be a multiple of the scale (2)"),
    ],
)
def test_gan_table_refuses_unknown_keys_and_bad_values(
    tmp_path: Path, data_root: Path, extra: str, message: str
) -> None:
    text = _recipe(tmp_path, data_root).read_text()
    # a later key of the same name would be a TOML error, so replace rather than append
    key = extra.split(" =")[0]
    text = "".join(line for line in text.splitlines(True) if not line.startswith(f"{key} = ")) + extra + "\n"
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_recipe(path)


def test_the_phase_term_needs_a_scale_with_sub_pixels(tmp_path: Path, data_root: Path) -> None:
    path = tmp_path / "x1.toml"
    path.write_text(_recipe(tmp_path, data_root).read_text().replace("scale = 2\n", "scale = 1\n", 1))
    with pytest.raises(
        ConfigError, match=re.escape("gan.phase_weight needs scale >= 2 (a sub-pixel grid), got scale 1")
    ):
        load_recipe(path)


def test_gan_loss_must_be_ragan_or_hinge(tmp_path: Path, data_root: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("gan.loss must be 'ragan' or 'hinge'")):
        load_recipe(_recipe(tmp_path, data_root, loss="wgan"))


def test_a_psnr_recipe_saved_before_gan_existed_still_reads_and_resumes(
    tmp_path: Path, data_root: Path
) -> None:
    recipe = load_recipe(_recipe(tmp_path, data_root, gan=False, name="plain"))
    old = recipe.to_dict()
    del old["gan"]  # what a checkpoint written before [gan] existed holds
    assert recipe_from_dict(old, name="plain") == recipe
    check_resumable(old, recipe, tmp_path)  # no difference reported


@pytest.mark.parametrize("name", ["gan-x2", "gan-x4", "compact-real-x2", "compact-real-x4"])
def test_shipped_gan_recipes_parse(name: str) -> None:
    recipe = load_recipe(CONFIGS / f"{name}.toml")
    assert recipe.scale == int(name[-1]) and recipe.data.degradation == "realistic"
    assert recipe.model.hyperparameters == {"num_feat": 64, "num_conv": 16, "act_type": "prelu"}
    if name.startswith("gan"):
        assert recipe.gan is not None
        assert recipe.gan.init_from.endswith(f"runs/compact-real-x{recipe.scale}.safetensors")
        sibling = load_recipe(CONFIGS / f"compact-real-x{recipe.scale}.toml")
        assert sibling.model == recipe.model and sibling.data.degradation == recipe.data.degradation
    else:
        assert recipe.gan is None


# -- losses --------------------------------------------------------------------------------------


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_adversarial_losses_match_hand_values() -> None:
    real = torch.tensor([1.0, -0.5])
    fake = torch.tensor([0.5, -2.0])
    assert hinge_d_loss(real, fake).item() == pytest.approx((0 + 1.5) / 2 + (1.5 + 0) / 2)
    assert hinge_g_loss(real, fake).item() == pytest.approx(0.75)
    # mean(fake) = -0.75, mean(real) = 0.25; BCE(x, 1) = softplus(-x), BCE(x, 0) = softplus(x)
    r_rel, f_rel = [1.75, 0.25], [0.25, -2.25]
    d = 0.5 * (np.mean([_softplus(-x) for x in r_rel]) + np.mean([_softplus(x) for x in f_rel]))
    g = 0.5 * (np.mean([_softplus(x) for x in r_rel]) + np.mean([_softplus(-x) for x in f_rel]))
    assert ragan_d_loss(real, fake).item() == pytest.approx(d, rel=1e-6)
    assert ragan_g_loss(real, fake).item() == pytest.approx(g, rel=1e-6)
    assert ragan_d_loss(real.bfloat16(), fake.bfloat16()).dtype == torch.float32


def test_gradient_and_ssim_losses() -> None:
    pred = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    assert gradient_loss(pred, torch.zeros_like(pred)).item() == pytest.approx(0.5)  # dx 1, dy 0
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    x = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
    y = torch.from_numpy(b).permute(2, 0, 1)[None].float() / 255
    assert gradient_loss(x, x).item() == 0.0 and gradient_loss(x, y).item() > 0
    assert ssim_loss(x, x).item() == pytest.approx(0.0, abs=1e-6) and ssim_loss(x, y).item() > 0.01
    # the same SSIM as the evaluation protocol's (numpy float64, peak 255)
    assert 1 - ssim_loss(x, y).item() == pytest.approx(ssim(a, b), abs=2e-5)
    y.requires_grad_(True)
    ssim_loss(x, y).backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_phase_loss_measures_the_sub_pixel_grid_only() -> None:
    truth = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    grid = torch.zeros(4, 4)
    grid[0, 0] = 0.04  # one phase of every 4x4 cell 0.04 brighter
    # per block: that phase's mean is 0.04, the others 0; less the block mean 0.0025:
    # |0.0375| once and |-0.0025| fifteen times over 16 phases
    assert phase_loss(truth + grid.repeat(16, 16), truth, 4).item() == pytest.approx(0.075 / 16, rel=1e-5)
    assert phase_loss(truth, truth, 4).item() == 0.0
    assert phase_loss(truth + 0.1, truth, 4).item() == pytest.approx(0.0, abs=1e-7)  # a level shift
    # at x2 phases (16-pixel blocks) one of the four phases holds a quarter of the bright pixels:
    # means 0.01, 0, 0, 0, less 0.0025: (0.0075 + 3 * 0.0025) / 4
    assert phase_loss(truth + grid.repeat(16, 16), truth, 2, block=16).item() == pytest.approx(
        0.00375, rel=1e-5
    )
    # its gradient removes the grid and leaves every block's mean where it is
    pred = (truth + grid.repeat(16, 16)).requires_grad_(True)
    phase_loss(pred, truth, 4).backward()
    assert pred.grad is not None and pred.grad[0, 0, 0, 0] > 0 > pred.grad[0, 0, 0, 1]
    block_sums = pred.grad.reshape(2, 3, 2, 32, 2, 32).sum(dim=(3, 5))
    assert block_sums.abs().max() < 1e-4 * pred.grad.abs().max()  # zero, up to float32 rounding
    with pytest.raises(ValueError, match="multiple of the scale"):
        phase_loss(truth, truth, 3, block=32)
    with pytest.raises(ValueError, match="holds no 32x32 block"):
        phase_loss(truth[..., :16], truth[..., :16], 4)


def test_gradient_ratio_tells_blur_from_noise() -> None:
    rng = np.random.default_rng(1)
    hr = np.asarray(smooth_image(rng, (40, 30)))
    blurred = np.asarray(Image.fromarray(hr).resize((10, 8)).resize((40, 30), Image.Resampling.BILINEAR))
    noisy = np.clip(hr.astype(int) + rng.integers(-30, 31, hr.shape), 0, 255).astype(np.uint8)
    assert gradient_ratio(hr, hr) == 1.0
    assert gradient_ratio([hr, hr], [hr, hr], crop=2) == 1.0
    assert 0 < gradient_ratio(blurred, hr) < 0.9 < 1.1 < gradient_ratio(noisy, hr)
    assert gradient_ratio(np.full_like(hr, 128), hr) == 0.0


def test_discriminator_gives_a_logit_per_pixel_and_refuses_odd_sides() -> None:
    d = UNetDiscriminatorSN(3, 8)
    assert d(torch.rand(2, 3, 16, 24)).shape == (2, 1, 16, 24)
    with pytest.raises(ValueError, match="multiples of 8"):
        d(torch.rand(1, 3, 12, 16))
    assert any(k.endswith("parametrizations.weight.0.u") for k in d.state_dict())


# -- training ------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["ragan", "hinge"])
def test_gan_run_trains_both_networks(tmp_path: Path, data_root: Path, loss: str) -> None:
    trainer = Trainer(load_recipe(_recipe(tmp_path, data_root, loss=loss)), tmp_path / "run")
    assert trainer.gan is not None
    d_before = {k: v.clone() for k, v in trainer.gan.discriminator.state_dict().items()}
    g_before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert trainer.run().step == 4
    d_after = trainer.gan.discriminator.state_dict()
    assert not torch.equal(d_before["conv0.weight"], d_after["conv0.weight"])
    assert not torch.equal(g_before["body.0.weight"], trainer.model.state_dict()["body.0.weight"])
    log = [json.loads(line) for line in (tmp_path / "run" / LOG_NAME).read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    for record in log:
        for key in (
            "loss",
            "g_pixel",
            "g_gradient",
            "g_ssim",
            "g_phase",
            "g_adv",
            "d_loss",
            "d_real",
            "d_fake",
        ):
            assert math.isfinite(record[key]), (key, record)
        assert record["val_gradient_ratio"] > 0 and math.isfinite(record["val_psnr_y"])


def test_resumed_gan_run_equals_uninterrupted_run(tmp_path: Path, data_root: Path) -> None:
    recipe = load_recipe(_recipe(tmp_path, data_root, warmup=1))
    straight = Trainer(recipe, tmp_path / "straight")
    assert straight.run().reason == "done"
    first = Trainer(recipe, tmp_path / "resumed")
    assert first.run(stop_at=2).step == 2
    resumed = Trainer(recipe, tmp_path / "resumed", resume=True)
    assert resumed.step == 2 and resumed.run().step == 4
    assert straight.gan is not None and resumed.gan is not None
    pairs = [
        (straight.model, resumed.model),
        (straight.ema.module, resumed.ema.module),
        (straight.gan.discriminator, resumed.gan.discriminator),
    ]
    for a, b in pairs:
        assert _same_state(a.state_dict(), b.state_dict())
    sa, sb = straight.gan.optimizer.state_dict()["state"], resumed.gan.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)
    assert straight.gan.optimizer.param_groups[0]["lr"] == resumed.gan.optimizer.param_groups[0]["lr"]
    read = lambda run: [json.loads(x) for x in (tmp_path / run / LOG_NAME).read_text().splitlines()]  # noqa: E731
    drop = ("seconds", "steps_per_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in read("resumed")] == [
        {k: v for k, v in r.items() if k not in drop} for r in read("straight")
    ]


def test_export_holds_the_generator_only(tmp_path: Path, data_root: Path) -> None:
    trainer = Trainer(load_recipe(_recipe(tmp_path, data_root, steps=2)), tmp_path / "run")
    trainer.run()
    state = load_checkpoint(tmp_path / "run")
    assert state is not None and {"discriminator", "d_optimizer", "d_scheduler"} <= set(state)
    for path in (tmp_path / "a.safetensors", tmp_path / "b.safetensors"):
        if path.name == "a.safetensors":
            trainer.export(path)
        else:
            export_run(tmp_path / "run", path, eval_folders=())
        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
        assert keys == set(build_model(trainer.recipe).module.state_dict())
        loaded = load_model(path)
        assert loaded.descriptor.architecture == "compact" and loaded.descriptor.scale == 2
        assert _same_state(loaded.module.state_dict(), trainer.ema.module.state_dict())


def test_init_from_starts_the_generator_at_the_psnr_weights(tmp_path: Path, data_root: Path) -> None:
    plain = load_recipe(_recipe(tmp_path, data_root, gan=False, name="psnr"))
    psnr = build_model(plain, seed=11).module  # other weights than the GAN recipe's own start
    (tmp_path / "runs").mkdir()
    export_weights(psnr, tmp_path / "runs" / "psnr.safetensors", recipe=plain, steps=0)
    extra = 'init_from = "runs/psnr.safetensors"'
    trainer = Trainer(load_recipe(_recipe(tmp_path, data_root, warmup=1, extra=extra)), tmp_path / "gan")
    assert _same_state(trainer.model.state_dict(), psnr.state_dict())
    assert _same_state(trainer.ema.module.state_dict(), psnr.state_dict())
    trainer.train_step(*trainer.data.batch(0))  # warm-up: only the discriminator moves
    assert _same_state(trainer.model.state_dict(), psnr.state_dict())
    trainer.train_step(*trainer.data.batch(1))
    assert not _same_state(trainer.model.state_dict(), psnr.state_dict())
    trainer.export(tmp_path / "gan.safetensors")  # shipped metadata names the PSNR stage, not this machine
    assert read_weights_metadata(tmp_path / "gan.safetensors")["training"]["gan"]["init_from"] == (
        "runs/psnr.safetensors"
    )

    wider = load_recipe(_recipe(tmp_path, data_root, gan=False, name="wide")).replace(
        model=plain.model.__class__(architecture="compact", hyperparameters={"num_feat": 12, "num_conv": 1})
    )
    export_weights(build_model(wider).module, tmp_path / "runs" / "wide.safetensors", recipe=wider, steps=0)
    other = load_recipe(_recipe(tmp_path, data_root, extra='init_from = "runs/wide.safetensors"'))
    with pytest.raises(ConfigError, match="num_feat"):
        Trainer(other, tmp_path / "gan-wide")
    missing = load_recipe(_recipe(tmp_path, data_root, extra='init_from = "runs/none.safetensors"'))
    with pytest.raises(ConfigError, match="train and export the PSNR stage first"):
        Trainer(missing, tmp_path / "gan-missing")


def test_a_psnr_checkpoint_from_before_gan_resumes_and_exports(tmp_path: Path, data_root: Path) -> None:
    recipe = load_recipe(_recipe(tmp_path, data_root, gan=False, name="plain"))
    Trainer(recipe, tmp_path / "old").run(stop_at=2)
    state = load_checkpoint(tmp_path / "old")
    assert state is not None and state["format"] == 1
    del state["recipe"]["gan"]  # written by the code before [gan]: no such key, no D state
    save_checkpoint(tmp_path / "old", state)
    export_run(tmp_path / "old", tmp_path / "old.safetensors", eval_folders=())
    resumed = Trainer(recipe, tmp_path / "old", resume=True)
    assert resumed.gan is None and resumed.run().step == 4


def test_cli_shows_the_gan_losses_and_sharpness(tmp_path: Path, data_root: Path) -> None:
    recipe = str(_recipe(tmp_path, data_root, steps=2))
    out = tmp_path / "cli.safetensors"
    result = CliRunner().invoke(
        app, ["train", recipe, "--run-dir", str(tmp_path / "cli"), "--export", str(out)]
    )
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stderr.splitlines() if x.startswith("step 2/2"))
    assert re.search(r"g_adv \d+\.\d{4}  d_loss \d+\.\d{4}", line) and "sharpness" in line, line
    assert load_model(out).descriptor.architecture == "compact"


@pytest.mark.parametrize("loss", ["ragan", "hinge"])
def test_the_adversarial_term_alone_reaches_the_generator_not_the_discriminator(
    tmp_path: Path, data_root: Path, loss: str
) -> None:
    text = _recipe(tmp_path, data_root, loss=loss).read_text()
    for term in ("pixel", "gradient", "ssim"):
        text = re.sub(rf"{term}_weight = [\d.]+", f"{term}_weight = 0.0", text)
    path = tmp_path / "adv-only.toml"
    path.write_text(text)
    trainer = Trainer(load_recipe(path), tmp_path / "adv")
    assert trainer.gan is not None
    lr, hr = trainer.data.batch(0)
    with torch.no_grad():
        out = trainer.model(lr)
    trainer.gan.discriminator_step(hr, out)
    d_state = {k: v.clone() for k, v in trainer.gan.discriminator.state_dict().items()}
    trainer.gan.optimizer.zero_grad(set_to_none=True)
    out = trainer.model(lr)
    trainer.gan.generator_loss(out, hr, torch.zeros(())).backward()
    assert all(p.grad is None for p in trainer.gan.discriminator.parameters())
    grads = [p.grad for p in trainer.model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(
        g.abs().sum() > 0 for g in grads
    )
    assert _same_state(trainer.gan.discriminator.state_dict(), d_state)  # eval: no power iteration
