"""Training recipes: TOML files in ``configs/train/`` read into frozen, typed dataclasses.

A recipe is everything that decides a run's result: model, data, optimiser, schedule, loss,
precision and seed. Unknown keys are refused with `ConfigError` naming them (a misspelt key
silently ignored would train a different model than the one written down). Relative paths are
resolved against ``[data] root``, which is itself relative to the recipe file, so a recipe works
from any current directory.

    scale = 2
    steps = 150_000
    task = "sr" | "denoise"   (default "sr"; a denoise recipe has scale 1, an ffdnet model and
                               a noise degradation, "gaussian-noise", see `vsr.train.denoise`)
    [model]      architecture = "compact", then its hyperparameters (num_feat, num_conv, ...)
    [data]       root, train, val, report, patch_size, batch, degradation, lossy_downscale, max_side
    [optimizer]  name = "adam" | "adamw", lr, betas, weight_decay, grad_clip
    [schedule]   name = "cosine" | "step", warmup_steps, min_lr, milestones, gamma
    [gan]        optional: GAN fine-tuning (see `GanSpec`); its presence turns it on
    init_from    optional: exported weights (.safetensors) of the recipe's own model to start
                 from (fine-tuning, e.g. with loss = "mse-y" after an L1 run), or of the same
                 compact network at a scale that divides the recipe's (an x4 run from an x2
                 model, `vsr.models.compact.widen_compact_scale`); "": random

``init_from`` and ``[gan] init_from`` are relative to the recipe file (like ``[data] root``), not
to the data root: they name another run's exported weights, which live with the runs or with the
package, not with the data.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vsr.errors import ConfigError
from vsr.quality.sharpness import PHASE_BLOCK
from vsr.train.denoise import NOISE_MODELS

__all__ = [
    "DataSpec",
    "GanSpec",
    "LossName",
    "ModelSpec",
    "OptimizerSpec",
    "PrecisionName",
    "Recipe",
    "ScheduleSpec",
    "TaskName",
    "load_recipe",
    "recipe_from_dict",
]

LossName = Literal["l1", "charbonnier", "mse", "mse-y"]
PrecisionName = Literal["auto", "fp32", "bf16", "fp16"]
TaskName = Literal["sr", "denoise"]

# Hyperparameters each architecture's constructor takes from a recipe, and their types; scale
# and channels come from the recipe itself.
MODEL_HYPERPARAMETERS: dict[str, dict[str, type]] = {
    "compact": {"num_feat": int, "num_conv": int, "act_type": str},
    "rrdb": {"num_feat": int, "num_block": int, "num_grow_ch": int},
    "ffdnet": {"num_feat": int, "depth": int},
}


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    architecture: str
    hyperparameters: Mapping[str, int | float | str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    train: tuple[str, ...]  # folders searched recursively for images
    val: str  # folder of ground truths scored during training (Y-PSNR; denoise: RGB PSNR at sigma 25)
    report: tuple[str, ...] = ()  # folders scored into the exported weights' metadata
    patch_size: int = 96  # high-resolution patch side, a multiple of the scale
    batch: int = 16
    degradation: str = "bicubic"
    lossy_downscale: int = 2  # JPEGs are shrunk by this factor once, to hide their artefacts
    max_side: int = 0  # then anything larger is shrunk to fit this side; 0: no limit


@dataclass(frozen=True, kw_only=True)
class OptimizerSpec:
    name: Literal["adam", "adamw"] = "adam"
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # max global gradient norm; 0: no clipping


@dataclass(frozen=True, kw_only=True)
class ScheduleSpec:
    name: Literal["cosine", "step"] = "cosine"
    warmup_steps: int = 0  # linear ramp from 0 to lr
    min_lr: float = 1e-7  # cosine: the floor reached at the last step
    milestones: tuple[int, ...] = ()  # step: multiply the lr by gamma at each of these steps
    gamma: float = 0.5


@dataclass(frozen=True, kw_only=True)
class GanSpec:
    """GAN fine-tuning: a discriminator trained alongside, and a generator loss of weighted terms.

    Generator loss = pixel_weight * (the recipe's ``loss``) + gradient_weight * gradient L1
    + ssim_weight * (1 - SSIM) + phase_weight * the sub-pixel grid of the residual (`phase_loss`,
    in ``phase_block``-pixel blocks) + adversarial_weight * the adversarial loss. The discriminator has
    its own Adam(W) (the recipe's optimizer name) with ``d_lr``/``d_betas``, on the recipe's
    schedule scaled to ``d_lr``.
    """

    init_from: str = ""  # PSNR weights (.safetensors) of the same model to start from; "": random
    loss: Literal["ragan", "hinge"] = "ragan"
    pixel_weight: float = 1.0
    gradient_weight: float = 0.0
    ssim_weight: float = 0.0
    phase_weight: float = 0.0
    phase_block: int = PHASE_BLOCK  # HR pixels; a multiple of the scale that divides data.patch_size
    adversarial_weight: float = 0.1
    d_num_feat: int = 64  # discriminator width (Real-ESRGAN's U-Net: 64)
    d_lr: float = 1e-4
    d_betas: tuple[float, float] = (0.9, 0.99)
    d_warmup_steps: int = 0  # the first steps train the discriminator only; the generator waits


@dataclass(frozen=True, kw_only=True)
class Recipe:
    name: str
    scale: int
    steps: int
    model: ModelSpec
    data: DataSpec
    task: TaskName = "sr"
    optimizer: OptimizerSpec = OptimizerSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    loss: LossName = "l1"
    ema_decay: float = 0.999
    precision: PrecisionName = "auto"  # auto: bf16 on CUDA and on CPUs with native bf16, else fp32
    seed: int = 0
    log_every: int = 100
    val_every: int = 1000
    checkpoint_every: int = 1000
    init_from: str = ""  # weights (.safetensors) of this model to start from; "": random
    gan: GanSpec | None = None

    def __post_init__(self) -> None:
        _check_recipe(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for checkpoints and metadata); `recipe_from_dict` reads it back."""
        data = dataclasses.asdict(self)
        data["model"] = {"architecture": self.model.architecture, **self.model.hyperparameters}
        return data

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"recipe: {name} must be positive, got {value}")


def _check_recipe(r: Recipe) -> None:
    for name in ("scale", "steps", "log_every", "val_every", "checkpoint_every"):
        _positive(name, getattr(r, name))
    _positive("data.batch", r.data.batch)
    _positive("data.lossy_downscale", r.data.lossy_downscale)
    _positive("optimizer.lr", r.optimizer.lr)
    if r.data.patch_size % r.scale or r.data.patch_size < 4 * r.scale:
        raise ConfigError(
            f"recipe: data.patch_size {r.data.patch_size} must be a multiple of the scale {r.scale} "
            f"and at least {4 * r.scale}"
        )
    if not 0.0 <= r.ema_decay < 1.0:
        raise ConfigError(f"recipe: ema_decay must be in [0, 1), got {r.ema_decay}")
    if not r.data.train:
        raise ConfigError("recipe: data.train needs at least one folder")
    if r.schedule.name == "step" and not r.schedule.milestones:
        raise ConfigError("recipe: schedule 'step' needs milestones (steps at which the lr drops)")
    if not 0 <= r.schedule.warmup_steps < r.steps:
        raise ConfigError(
            f"recipe: schedule.warmup_steps must be in [0, steps), got {r.schedule.warmup_steps}"
        )
    known = MODEL_HYPERPARAMETERS.get(r.model.architecture)
    if known is None:
        raise ConfigError(
            f"recipe: unknown model.architecture {r.model.architecture!r}; "
            f"trainable: {', '.join(MODEL_HYPERPARAMETERS)}"
        )
    for key, value in r.model.hyperparameters.items():
        if key not in known:
            raise ConfigError(
                f"recipe: unknown key 'model.{key}' for {r.model.architecture}; known: {', '.join(known)}"
            )
        if not isinstance(value, known[key]) or isinstance(value, bool):
            raise ConfigError(f"recipe: model.{key} must be {known[key].__name__}, got {value!r}")
    if r.gan is not None:
        _check_gan(r.gan, r)
    _check_init_from(r)
    _check_task(r)


def _check_task(r: Recipe) -> None:
    # The model's side (an ffdnet is a denoiser, a compact is not) is checked by build_model,
    # from the descriptor the registry gives the model.
    noise = r.data.degradation in NOISE_MODELS
    if r.task == "sr" and noise:
        raise ConfigError(
            f'recipe: data.degradation {r.data.degradation!r} is for task = "denoise"; '
            "an SR recipe needs a resizing degradation such as 'bicubic'"
        )
    if r.task != "denoise":
        return
    if r.scale != 1:
        raise ConfigError(
            f"recipe: task 'denoise' needs scale = 1 (a denoiser keeps the size), got {r.scale}"
        )
    if not noise:
        raise ConfigError(
            f"recipe: task 'denoise' trains on noisy inputs: set data.degradation to one of "
            f"{', '.join(NOISE_MODELS)}, not {r.data.degradation!r}"
        )
    if r.gan is not None:
        raise ConfigError("recipe: [gan] fine-tuning is for SR recipes; remove it from a denoise recipe")


def _check_init_from(r: Recipe) -> None:
    if r.init_from and not r.init_from.endswith(".safetensors"):
        raise ConfigError(f"recipe: init_from must be a .safetensors file, got {r.init_from!r}")
    if r.init_from and r.gan is not None and r.gan.init_from:
        raise ConfigError("recipe: set init_from or gan.init_from, not both (they name the same start)")


def _check_gan(g: GanSpec, r: Recipe) -> None:
    for name in ("pixel_weight", "gradient_weight", "ssim_weight", "phase_weight", "adversarial_weight"):
        if getattr(g, name) < 0:
            raise ConfigError(f"recipe: gan.{name} must be >= 0, got {getattr(g, name)}")
    _positive("gan.d_num_feat", g.d_num_feat)
    _positive("gan.d_lr", g.d_lr)
    if not 0 <= g.d_warmup_steps < r.steps:
        raise ConfigError(f"recipe: gan.d_warmup_steps must be in [0, steps), got {g.d_warmup_steps}")
    if r.data.patch_size % 8:
        raise ConfigError(
            f"recipe: data.patch_size {r.data.patch_size} must be a multiple of 8 for the discriminator "
            "(it halves the patch three times)"
        )
    if g.ssim_weight > 0 and r.data.patch_size < 16:
        raise ConfigError(f"recipe: gan.ssim_weight needs data.patch_size >= 16, got {r.data.patch_size}")
    if g.phase_weight > 0 and r.scale < 2:
        raise ConfigError(
            f"recipe: gan.phase_weight needs scale >= 2 (a sub-pixel grid), got scale {r.scale}"
        )
    if g.phase_weight > 0 and (g.phase_block % r.scale or r.data.patch_size % g.phase_block):
        raise ConfigError(
            f"recipe: gan.phase_block {g.phase_block} must be a multiple of the scale ({r.scale}) "
            f"that divides data.patch_size ({r.data.patch_size})"
        )
    if g.init_from and not g.init_from.endswith(".safetensors"):
        raise ConfigError(f"recipe: gan.init_from must be a .safetensors file, got {g.init_from!r}")


def _matches(value: object, hint: object) -> bool:
    """Whether a TOML value fits a (simple) type hint: scalars, Literals, tuples and unions."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if hint is float:
        # TOML writes 1e-3 and 0.0 as floats but 1 as an int; an int is a fine float.
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _describe_hint(hint: object) -> str:
    if typing.get_origin(hint) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def _build(cls: type, table: Mapping[str, Any], section: str) -> Any:
    """``cls(**table)`` with unknown keys and wrong types reported by their dotted name."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"recipe: [{section}] must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    prefix = f"{section}." if section else ""
    unknown = sorted(set(table) - names)
    if unknown:
        raise ConfigError(
            f"recipe: unknown key {', '.join(repr(prefix + k) for k in unknown)}; "
            f"known: {', '.join(sorted(names))}"
        )
    values: dict[str, Any] = {}
    for key, value in table.items():
        if not _matches(value, hints[key]):
            raise ConfigError(f"recipe: {prefix}{key} must be {_describe_hint(hints[key])}, got {value!r}")
        values[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**values)
    except TypeError as exc:
        # A required key is missing: dataclasses name it in the message.
        missing = str(exc).split("argument", 1)[-1].strip(": ")
        raise ConfigError(f"recipe: [{section or 'top level'}] is missing {missing}") from None


def recipe_from_dict(data: Mapping[str, Any], *, name: str, base: Path | None = None) -> Recipe:
    """Build a recipe from parsed TOML (or `Recipe.to_dict`); relative paths resolve against ``base``."""
    data = dict(data)
    data.pop("name", None)  # `Recipe.to_dict` holds it; the ``name`` argument says it
    model_table = dict(data.pop("model", None) or {})
    if "architecture" not in model_table:
        raise ConfigError('recipe: [model] needs an architecture (e.g. architecture = "compact")')
    model = ModelSpec(architecture=str(model_table.pop("architecture")), hyperparameters=model_table)
    data_table = dict(data.pop("data", None) or {})
    root = Path(data_table.pop("root", "."))
    if base is not None and not root.is_absolute():
        root = base / root

    def resolve(p: str) -> str:
        return str((root / p).resolve()) if base is not None else str(root / p)

    for key in ("train", "report"):
        if isinstance(data_table.get(key), list):
            data_table[key] = [resolve(str(p)) for p in data_table[key]]
    if isinstance(data_table.get("val"), str):
        data_table["val"] = resolve(data_table["val"])
    gan_table = data.pop("gan", None)
    if isinstance(gan_table, Mapping):
        gan_table = dict(gan_table)
        init_from = gan_table.get("init_from")
        if (
            isinstance(init_from, str)
            and init_from
            and base is not None
            and not Path(init_from).is_absolute()
        ):
            gan_table["init_from"] = str((base / init_from).resolve())
    init_from = data.get("init_from")
    if isinstance(init_from, str) and init_from and base is not None and not Path(init_from).is_absolute():
        data["init_from"] = str((base / init_from).resolve())
    specs = {
        "gan": None if gan_table is None else _build(GanSpec, gan_table, "gan"),
        "data": _build(DataSpec, data_table, "data"),
        "optimizer": _build(OptimizerSpec, data.pop("optimizer", {}), "optimizer"),
        "schedule": _build(ScheduleSpec, data.pop("schedule", {}), "schedule"),
    }
    top: _TopLevel = _build(_TopLevel, data, "")
    fields = {f.name: getattr(top, f.name) for f in dataclasses.fields(_TopLevel)}
    return Recipe(name=name, model=model, **specs, **fields)


@dataclass(frozen=True, kw_only=True)
class _TopLevel:
    # The recipe's scalar keys alone, so `_build` can check them before the sections are combined.
    scale: int
    steps: int
    task: TaskName = "sr"
    loss: LossName = "l1"
    ema_decay: float = 0.999
    precision: PrecisionName = "auto"
    seed: int = 0
    log_every: int = 100
    val_every: int = 1000
    checkpoint_every: int = 1000
    init_from: str = ""


def load_recipe(path: str | Path) -> Recipe:
    """Read ``configs/train/NAME.toml``; the recipe is named by the file's stem."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"recipe {p} not found; recipes live in configs/train/") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read recipe {p}: {exc}") from None
    if "name" in data:
        raise ConfigError(f"recipe {p}: unknown key 'name'; a recipe is named by its file ({p.stem})")
    return recipe_from_dict(data, name=p.stem, base=p.resolve().parent)
