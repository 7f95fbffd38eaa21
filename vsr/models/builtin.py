"""Built-in weights: models the project trained itself, shipped as small ``.safetensors`` files.

Weights are data with metadata (torchvision's ``WeightsEnum`` habit). Each file in
``vsr/models/weights/`` carries its own metadata in the safetensors header (architecture, scale,
parameters, FLOPs per input pixel, the training recipe, evaluation scores: see
`vsr.train.export`); ``index.json`` beside them lists the shipped names with each file's sha256
and size, which a file cannot carry about itself. Loading a built-in checks the hash, so damaged
or swapped weights fail loudly instead of upscaling badly.

``default_builtin(scale, device)`` is what ``--model auto`` runs: ``compact-xN`` on CUDA (the
GPU model), ``fast-xN`` on the CPU, falling back to whichever of the two ships, and for a scale
with no model of its own, the smallest shipped scale above it (the pipeline resizes the rest).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from vsr.errors import ModelError
from vsr.models.descriptor import LoadedModel
from vsr.models.registry import ARCHITECTURES

__all__ = [
    "DENOISERS",
    "INDEX_NAME",
    "WEIGHTS_DIR",
    "BuiltinWeights",
    "builtin_denoiser",
    "builtin_weights",
    "default_builtin",
    "file_sha256",
    "load_builtin",
    "read_index",
    "read_weights_metadata",
    "write_index",
]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# The built-in denoisers. The --denoise pre-pass runs the first that ships: denoise-lite (64
# features) costs 0.64 of denoise (80 features) for a little less quality, which keeps the
# pre-pass inside a fifth of the Restore stage's time; `--denoiser denoise` picks the other.
DENOISERS = ("denoise-lite", "denoise")
INDEX_NAME = "index.json"
# Preference of ``--model auto`` by device type: the GPU model first on CUDA, the cheap one on CPUs.
_FAMILIES = {"cuda": ("compact", "fast"), "cpu": ("fast", "compact")}
# Header entries the training export writes as JSON strings.
_JSON_METADATA = ("hyperparameters", "training", "eval")


@dataclass(frozen=True, kw_only=True)
class BuiltinWeights:
    name: str  # "fast-x2": family and scale
    path: Path
    sha256: str
    bytes: int
    metadata: Mapping[str, Any]  # the file's header, JSON entries decoded

    @property
    def family(self) -> str:
        return self.name.rsplit("-x", 1)[0]

    @property
    def scale(self) -> int:
        return int(self.metadata["scale"])


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_weights_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A ``.safetensors`` file's ``__metadata__``, with the JSON-valued entries decoded."""
    with safe_open(str(path), framework="pt") as f:
        meta: dict[str, Any] = dict(f.metadata() or {})
    for key in _JSON_METADATA:
        if key in meta:
            meta[key] = json.loads(meta[key])
    return meta


def read_index(folder: Path = WEIGHTS_DIR) -> dict[str, dict[str, Any]]:
    """``index.json``: name -> {"file", "sha256", "bytes"}; empty when nothing ships."""
    path = folder / INDEX_NAME
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")))


def write_index(folder: Path = WEIGHTS_DIR) -> dict[str, dict[str, Any]]:
    """Rewrite ``index.json`` from the ``.safetensors`` files in ``folder`` (after shipping one)."""
    index = {
        p.stem: {"file": p.name, "sha256": file_sha256(p), "bytes": p.stat().st_size}
        for p in sorted(folder.glob("*.safetensors"))
        if ".partial" not in p.name
    }
    text = json.dumps(index, indent=2, sort_keys=True) + "\n"
    tmp = folder / f"{INDEX_NAME}.partial"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, folder / INDEX_NAME)
    builtin_weights.cache_clear()
    return index


@cache
def builtin_weights(folder: Path = WEIGHTS_DIR) -> dict[str, BuiltinWeights]:
    """Every shipped model by name, in index order."""
    found = {}
    for name, entry in read_index(folder).items():
        path = folder / entry["file"]
        if not path.is_file():
            raise ModelError(f"built-in model {name} is listed but {path} is missing; reinstall vsr")
        found[name] = BuiltinWeights(
            name=name,
            path=path,
            sha256=str(entry["sha256"]),
            bytes=int(entry["bytes"]),
            metadata=read_weights_metadata(path),
        )
    return found


def load_builtin(name: str, folder: Path = WEIGHTS_DIR) -> LoadedModel:
    """A shipped model, its file checked against the sha256 the index records."""
    weights = builtin_weights(folder).get(name)
    if weights is None:
        raise ModelError(
            f"no built-in model {name!r}; shipped: {', '.join(builtin_weights(folder)) or 'none'}"
        )
    actual = file_sha256(weights.path)
    if actual != weights.sha256:
        raise ModelError(
            f"built-in model {name} is damaged: {weights.path} has sha256 {actual[:16]}..., "
            f"the index says {weights.sha256[:16]}...; reinstall vsr"
        )
    try:
        state_dict = load_file(weights.path, device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"built-in model {name} cannot be read ({exc}); reinstall vsr") from exc
    arch = ARCHITECTURES.detect(state_dict)
    if arch is None:
        raise ModelError(f"built-in model {name} is not an architecture this vsr can load; reinstall vsr")
    return arch.build(state_dict, name=name, sha256=actual)


def builtin_denoiser(folder: Path = WEIGHTS_DIR) -> str | None:
    """The built-in denoiser ``--denoise`` runs unless ``--denoiser`` is given; None if none ships."""
    shipped = read_index(folder)
    return next((name for name in DENOISERS if name in shipped), None)


def default_builtin(scale: int, device_type: str, folder: Path = WEIGHTS_DIR) -> BuiltinWeights | None:
    """What ``--model auto`` runs for an output ``scale`` on a device; None when nothing ships.

    Only the PSNR-oriented SR families are candidates: a GAN model invents detail and the
    denoiser is no upscaler, so neither is ever picked unasked.
    """
    families = _FAMILIES.get(device_type, _FAMILIES["cpu"])
    candidates = [w for w in builtin_weights(folder).values() if w.family in families]
    scales = sorted({w.scale for w in candidates})
    if not scales:
        return None
    # The model's own scale where one ships; else the smallest above (then a downscale), else the
    # largest below (then an upscale of its output).
    above = [s for s in scales if s >= scale]
    chosen = above[0] if above else scales[-1]
    return min((w for w in candidates if w.scale == chosen), key=lambda w: families.index(w.family))
