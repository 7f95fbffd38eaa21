"""A recipe's network, built fresh for training, and its descriptor as the registry will see it.

The descriptor is not written by hand: the new module's state dict goes through the same
architecture registry that `vsr.models.load_model` uses, so a recipe whose weights would not load
back (or would load as something else) fails before the first training step, not after the last.
"""

from __future__ import annotations

import torch
from torch import nn

from vsr.errors import ConfigError
from vsr.models import ARCHITECTURES, FFDNet, LoadedModel, RRDBNet, SRVGGNetCompact
from vsr.train.recipe import Recipe

__all__ = ["build_model", "describe_module"]


def _construct(recipe: Recipe) -> nn.Module:
    hp = dict(recipe.model.hyperparameters)
    arch = recipe.model.architecture
    try:
        if arch == "compact":
            return SRVGGNetCompact(3, 3, scale=recipe.scale, **hp)  # type: ignore[arg-type]
        if arch == "rrdb":
            return RRDBNet(3, 3, scale=recipe.scale, **hp)  # type: ignore[arg-type]
        if arch == "ffdnet":
            return FFDNet(3, **hp)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"recipe {recipe.name}: cannot build a {arch} model ({exc})") from None
    raise ConfigError(f"recipe {recipe.name}: architecture {arch!r} cannot be trained")


def describe_module(module: nn.Module, *, name: str) -> LoadedModel:
    """The registry's view of ``module``: detection and hyperparameters from its state dict."""
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in module.state_dict().items()}
    arch = ARCHITECTURES.detect(state)
    if arch is None:
        raise ConfigError(f"{name}: the model's state dict is not an architecture vsr can load back")
    return arch.build(state, name=name, sha256=None)


def build_model(recipe: Recipe, *, seed: int | None = None) -> LoadedModel:
    """A freshly initialised, trainable module (float32, CPU) and its descriptor.

    Initialisation draws from torch's global generator seeded with ``seed`` (default: the
    recipe's), so the same recipe starts from the same weights.
    """
    torch.manual_seed(recipe.seed if seed is None else seed)
    module = _construct(recipe)
    described = describe_module(module, name=recipe.name)
    d = described.descriptor
    if d.task != recipe.task:
        kind = "a denoiser" if d.task == "denoise" else "a super-resolution model"
        raise ConfigError(
            f"recipe {recipe.name}: a {d.architecture} model is {kind} but the recipe's task is "
            f"{recipe.task!r}; set task = {d.task!r} or choose another architecture"
        )
    if (recipe.data.patch_size // recipe.scale) % d.size_multiple:
        raise ConfigError(
            f"recipe {recipe.name}: a {d.architecture} model needs input patches that are a multiple of "
            f"{d.size_multiple}; data.patch_size {recipe.data.patch_size} gives {recipe.data.patch_size // recipe.scale}"
        )
    # e.g. LeakyReLU leaves no tensors, so a compact model trained with it would load as ReLU
    differ = {
        k: d.hyperparameters[k]
        for k, v in recipe.model.hyperparameters.items()
        if k in d.hyperparameters and d.hyperparameters[k] != v
    }
    if d.architecture != recipe.model.architecture or d.scale != recipe.scale or differ:
        seen = ", ".join(f"{k}={v}" for k, v in differ.items())
        raise ConfigError(
            f"recipe {recipe.name}: a {recipe.model.architecture} x{recipe.scale} model would load back as "
            f"{d.architecture} x{d.scale}{' with ' + seen if seen else ''}; this combination cannot be shipped"
        )
    return LoadedModel(module=module, descriptor=d)
