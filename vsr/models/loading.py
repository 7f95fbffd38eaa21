"""Checkpoint loading without executing code, and `load_model` for built-in names and files."""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from vsr.errors import ModelError
from vsr.models.builtin import builtin_weights, file_sha256, load_builtin
from vsr.models.classic import CLASSIC_KERNELS, classic_model
from vsr.models.descriptor import LoadedModel
from vsr.models.registry import ARCHITECTURES
from vsr.models.spandrel_loader import load_with_spandrel

__all__ = ["BUILTIN_MODELS", "MAX_CLASSIC_SCALE", "check_model_name", "load_model", "load_state_dict"]

BUILTIN_MODELS: tuple[str, ...] = tuple(CLASSIC_KERNELS)
MAX_CLASSIC_SCALE = 8
# Training frameworks nest the weights; BasicSR/Real-ESRGAN prefer the EMA copy when both exist.
_CONTAINER_KEYS = ("params_ema", "params", "state_dict", "model", "net_g")
_UNSAFE_GLOBAL = re.compile(r"GLOBAL (\S+)")
_EXAMPLES = 4


def _is_tensor_dict(value: object) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(isinstance(v, Tensor) for v in value.values())


def _unwrap(obj: object, name: str) -> dict[str, Tensor]:
    # Containers can nest (a Lightning "state_dict" holding a "model"), so unwrap until tensors.
    while isinstance(obj, Mapping) and not _is_tensor_dict(obj):
        inner = next((obj[k] for k in _CONTAINER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise ModelError(
            f"checkpoint {name} holds a {type(obj).__name__}, not a dict of tensors; save its state_dict()"
        )
    # Training checkpoints keep counters (epoch, iteration) beside the weights: drop non-tensors.
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        keys = ", ".join(map(str, list(obj)[:_EXAMPLES])) or "nothing"
        raise ModelError(
            f"checkpoint {name} contains no tensors (top-level keys: {keys}); is it a model checkpoint?"
        )
    # DataParallel / DistributedDataParallel save every key under "module.".
    return {k.removeprefix("module."): v for k, v in tensors.items()}


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a ``.safetensors`` or ``.pth/.pt/.ckpt`` checkpoint's tensors on the CPU, executing no code.

    Pickles go through ``torch.load(weights_only=True)``, which refuses anything but tensors and
    plain containers. Common wrappers (``params_ema``, ``params``, ``state_dict``, ``model``,
    ``net_g``) are unwrapped and a ``module.`` prefix is stripped.
    """
    p = Path(path)
    name = p.name
    if not p.is_file():
        raise ModelError(f"checkpoint {p} does not exist or is not a file; check the path")
    if p.suffix.lower() == ".safetensors":
        try:
            return _unwrap(load_file(p, device="cpu"), name)
        except (SafetensorError, OSError) as exc:
            raise ModelError(
                f"checkpoint {name} is not a readable safetensors file ({exc}); re-download it"
            ) from exc
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of files that then fail anyway; the error
            # below says what matters, in one line
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if m := _UNSAFE_GLOBAL.search(str(exc)):
            raise ModelError(
                f"checkpoint {name} needs code execution to load (it pickles {m.group(1)}), which vsr refuses; "
                "convert it to .safetensors or a plain state_dict in a trusted environment"
            ) from exc
        raise ModelError(f"checkpoint {name} is corrupt or not a PyTorch checkpoint; re-download it") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        # torch reports a truncated zip archive as a RuntimeError; keep only the first sentence.
        reason = str(exc).split(".")[0].strip() or type(exc).__name__
        raise ModelError(f"checkpoint {name} cannot be read ({reason}); re-download it") from exc
    return _unwrap(obj, name)


def _describe(state_dict: Mapping[str, Tensor]) -> str:
    examples = ", ".join(f"{k} {list(v.shape)}" for k, v in list(state_dict.items())[:_EXAMPLES])
    return f"found {len(state_dict)} tensors, e.g. {examples}"


def check_model_name(spec: str | os.PathLike[str]) -> None:
    """A `ModelError` now, before a run, for a name that is neither built in nor a file."""
    if isinstance(spec, str) and (spec in CLASSIC_KERNELS or spec in builtin_weights()):
        return
    if not Path(spec).exists():
        known = ", ".join([*BUILTIN_MODELS, *builtin_weights()])
        raise ModelError(f"unknown model {str(spec)!r}: not a built-in model ({known}) and no such file")


def load_model(spec: str | os.PathLike[str], *, scale: int | None = None) -> LoadedModel:
    """A ready-to-run model (eval mode, CPU, float32) and its descriptor.

    ``spec`` is a classic kernel (``bicubic``, ``lanczos``; ``scale`` required, 1 to 8), a shipped
    model's name (``fast-x2``, see `vsr.models.builtin`), or a path to a checkpoint whose
    architecture and hyperparameters are detected from its tensors: by vsr's own registry, else
    by spandrel when it is installed (`vsr.models.spandrel_loader`). For a trained model,
    ``scale`` if given must match the model's own scale.
    """
    if isinstance(spec, str) and spec in CLASSIC_KERNELS:
        if scale is None:
            raise ModelError(f"model {spec!r} needs a scale; pass one from 1 to {MAX_CLASSIC_SCALE}")
        if not 1 <= scale <= MAX_CLASSIC_SCALE:
            raise ModelError(f"model {spec!r} supports scales 1 to {MAX_CLASSIC_SCALE}, got {scale}")
        return classic_model(spec, scale)  # type: ignore[arg-type]
    path = Path(spec)
    if isinstance(spec, str) and spec in builtin_weights() and not path.exists():
        loaded = load_builtin(spec)
    elif not path.exists():
        check_model_name(spec)  # raises
    else:
        state_dict = load_state_dict(path)
        arch = ARCHITECTURES.detect(state_dict)
        if arch is not None:
            loaded = arch.build(state_dict, name=path.name, sha256=file_sha256(path))
        else:
            # vsr's own architectures first, so spandrel never changes how they load
            unrecognised = (
                f"checkpoint {path.name} is not an architecture vsr recognises ({', '.join(ARCHITECTURES.ids())}): "
                f"{_describe(state_dict)}"
            )
            loaded = load_with_spandrel(
                state_dict, name=path.name, sha256=file_sha256(path), unrecognised=unrecognised
            )
    if scale is not None and scale != loaded.descriptor.scale:
        raise ModelError(
            f"model {loaded.descriptor.name} is a x{loaded.descriptor.scale} model but scale {scale} was asked; "
            f"use a x{scale} model or leave the scale unset"
        )
    return loaded
