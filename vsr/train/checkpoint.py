"""Resumable training checkpoints: ``<run_dir>/last.pt``, written atomically, read without code.

A checkpoint holds everything a run's future depends on: model, EMA, optimiser, scheduler and
gradient-scaler states, the step, torch's random generators, the recipe and the wall time spent.
Data batches need no state (they are a function of seed and step). It is written to a temporary
file and renamed over ``last.pt``, so a run killed mid-write leaves the previous checkpoint
intact, and it is read with ``torch.load(weights_only=True)``: only tensors and plain data.
A GAN run's checkpoint adds its discriminator's states (`vsr.train.gan_step.GAN_STATE_KEYS`) to
the same format; a PSNR run's has none and reads as before.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from vsr.errors import ConfigError, OutputError
from vsr.train.recipe import Recipe

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "check_resumable",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

log = logging.getLogger(__name__)

# Recipe keys that may differ between a checkpoint and the recipe resuming it: they change what
# is logged or scored, not what is trained.
_RESUMABLE_CHANGES = frozenset({"name", "steps", "log_every", "val_every", "checkpoint_every"})
_DATA_RESUMABLE_CHANGES = frozenset({"val", "report"})
# Top-level recipe keys added after checkpoints were written: a recipe saved without one trained
# with its default, so a format-1 SR checkpoint still resumes under today's recipe.
_ADDED_DEFAULTS: dict[str, Any] = {"task": "sr"}
CHECKPOINT_NAME = "last.pt"
CHECKPOINT_FORMAT = 1
_REQUIRED = ("format", "step", "recipe", "model", "ema", "optimizer", "scheduler", "rng")


def rng_state() -> dict[str, Any]:
    cuda = [s.clone() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state().clone(), "cuda": cuda}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    # A run resumed on another machine may have fewer (or no) GPUs; restore what exists.
    if torch.cuda.is_available() and state["cuda"]:
        for i, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, i)


def save_checkpoint(run_dir: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``run_dir/last.pt`` through a temporary file and a rename."""
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {', '.join(missing)}")
    folder = Path(run_dir)
    path = folder / CHECKPOINT_NAME
    tmp = folder / f"{CHECKPOINT_NAME}.partial.{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            torch.save(state, f)
            f.flush()
            # the rename must not land before the data: a power cut would leave an empty last.pt
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(
            f"cannot write checkpoint {path} ({exc.strerror or exc}); check the run folder"
        ) from exc
    return path


def load_checkpoint(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run's last checkpoint, or None when the run folder has none yet."""
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"checkpoint {path} cannot be read ({reason}); delete it to start over or use another --run-dir"
        ) from exc
    if not isinstance(state, dict) or any(k not in state for k in _REQUIRED):
        raise ConfigError(f"{path} is not a vsr training checkpoint; use another --run-dir")
    if state["format"] != CHECKPOINT_FORMAT:
        raise ConfigError(
            f"checkpoint {path} has format {state['format']}, this vsr reads {CHECKPOINT_FORMAT}; "
            "resume it with the vsr that wrote it"
        )
    return state


def _comparable(recipe: dict[str, Any]) -> dict[str, Any]:
    plain = {**_ADDED_DEFAULTS, **json.loads(json.dumps(recipe))}  # tuples and lists alike
    data = {k: v for k, v in plain.pop("data", {}).items() if k not in _DATA_RESUMABLE_CHANGES}
    return {**{k: v for k, v in plain.items() if k not in _RESUMABLE_CHANGES}, "data": data}


def check_resumable(saved: dict[str, Any], recipe: Recipe, run_dir: Path) -> None:
    """Refuse to resume a run with a recipe that would train differently from its own."""
    old, new = _comparable(saved), _comparable(recipe.to_dict())
    keys = sorted(set(old) | set(new))
    diff = [k for k in keys if k != "data" and old.get(k) != new.get(k)]
    diff += [
        f"data.{k}"
        for k in sorted(set(old["data"]) | set(new["data"]))
        if old["data"].get(k) != new["data"].get(k)
    ]
    if diff:
        raise ConfigError(
            f"run {run_dir} was trained with a different recipe ({', '.join(diff)} differ); "
            "resume it with its own recipe or start a new --run-dir"
        )
