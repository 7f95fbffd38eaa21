"""Export trained (EMA) weights as ``.safetensors`` with the metadata a shipped model carries.

The header's ``__metadata__`` (strings only, as the format requires) says what the file is:
task, architecture, scale, hyperparameters, parameter count, FLOPs per input pixel, the recipe
that made it and how long it trained, and evaluation scores measured on the exported file itself
by the `vsr eval` code (`evaluate_folder`; for a denoiser `evaluate_denoising` at sigma 15, 25
and 50), so a score can never describe weights other than these. The file's sha256 is not inside
it (it cannot be); whoever lists the file computes it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from torch import nn

from vsr import __version__
from vsr.errors import ConfigError, ModelError, OutputError
from vsr.models import load_model
from vsr.models.builtin import read_weights_metadata
from vsr.quality import REPORT_SIGMAS, LrDegradation, evaluate_denoising, evaluate_folder
from vsr.train.checkpoint import load_checkpoint
from vsr.train.flops import conv_flops_per_pixel, parameter_count
from vsr.train.models import build_model
from vsr.train.recipe import Recipe, recipe_from_dict

__all__ = ["METADATA_FORMAT", "REQUIRED_METADATA", "export_run", "export_weights", "read_weights_metadata"]

log = logging.getLogger(__name__)

METADATA_FORMAT = "vsr-weights/1"
REQUIRED_METADATA = (
    "format",
    "architecture",
    "scale",
    "hyperparameters",
    "parameters",
    "flops_per_input_pixel",
    "recipe",
    "training",
    "steps",
    "eval",
)
FRAME_640x360 = 640 * 360


def _write_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """``safetensors.torch.save_file`` with a canonical header, so equal weights give equal bytes.

    safetensors writes the header's JSON in hash-map order, which changes from call to call; the
    header is re-encoded with sorted keys (the tensor data after it is already in a fixed order),
    so re-exporting a checkpoint reproduces the file and its sha256.
    """
    blob = save(tensors, metadata=metadata)
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data keeps the 8-byte alignment safetensors gives it
    path.write_bytes(len(text).to_bytes(8, "little") + text + blob[8 + n :])


def _portable(recipe: dict[str, Any]) -> dict[str, Any]:
    # Shipped files should not carry one machine's folders: keep each data path's last two parts
    # ("images/train", "eval/Set5"), which name the data set.
    def short(p: str) -> str:
        return "/".join(Path(p).parts[-2:])

    data = dict(recipe["data"])
    data["train"] = [short(p) for p in data["train"]]
    data["report"] = [short(p) for p in data["report"]]
    data["val"] = short(data["val"])
    portable = {**recipe, "data": data}
    if recipe.get("gan") and recipe["gan"].get("init_from"):  # the PSNR stage's weights: its run
        portable["gan"] = {**recipe["gan"], "init_from": short(recipe["gan"]["init_from"])}
    if recipe.get("init_from"):  # the weights a fine-tuning run started from
        portable["init_from"] = short(recipe["init_from"])
    return portable


def _scores(
    path: Path, folders: Sequence[str], scale: int, device: str, *, realistic: bool = False
) -> dict[str, dict[str, Any]]:
    # The SR protocol's (bicubic LR) scores; a model trained on the realistic degradation is also
    # scored on realistic LR inputs (seed 0, as `vsr eval --degradation realistic` makes them),
    # under "realistic", since that is what it is for and what a GAN model is judged on.
    def entry(degradation: LrDegradation) -> dict[str, Any]:
        report = evaluate_folder(
            folder, str(path), scale=scale, device=device, precision="fp32", degradation=degradation
        )
        return {
            "psnr_y": round(report.mean_psnr_y, 4),
            "ssim_y": round(report.mean_ssim_y, 6),
            "psnr_rgb": round(report.mean_psnr_rgb, 4),
            "gradient_ratio": round(report.gradient_ratio or 0.0, 4),
            "colour_offset_rgb": [round(c, 3) for c in report.colour_offset or ()],
            "images": len(report.rows),
        }

    scores = {}
    for folder in folders:
        scores[Path(folder).name] = entry("bicubic")
        if realistic:
            scores[Path(folder).name]["realistic"] = {**entry("realistic"), "seed": 0}
    return scores


def _denoise_scores(path: Path, folders: Sequence[str], device: str) -> dict[str, dict[str, Any]]:
    # One entry per noise level of the published colour-denoising tables.
    scores: dict[str, dict[str, Any]] = {}
    for folder in folders:
        by_sigma = {}
        for sigma in REPORT_SIGMAS:
            report = evaluate_denoising(folder, str(path), sigma=sigma, device=device, precision="fp32")
            by_sigma[f"sigma{sigma}"] = {
                "psnr_rgb": round(report.mean_psnr_rgb, 4),
                "ssim_rgb": round(report.mean_ssim_rgb, 6),
                "images": len(report.rows),
            }
        scores[Path(folder).name] = by_sigma
    return scores


def export_weights(
    module: nn.Module,
    path: str | os.PathLike[str],
    *,
    recipe: Recipe,
    steps: int,
    eval_folders: Sequence[str] = (),
    device: str = "cpu",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Write ``module``'s weights (float32) and metadata to ``path``; returns the metadata.

    The file is checked to load back through `load_model` as the recipe's architecture and scale
    before it replaces anything at ``path``.
    """
    out = Path(path)
    if out.suffix != ".safetensors":
        raise OutputError(f"export {out} must end in .safetensors")
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in module.state_dict().items()}
    cpu_copy = _cpu_float_copy(module)
    denoiser = recipe.task == "denoise"
    # a denoiser's second input is its noise level; the convolutions cost the same at any
    flops = conv_flops_per_pixel(cpu_copy, *((0.0,) if denoiser else ()))
    meta: dict[str, str] = {
        "format": METADATA_FORMAT,
        "task": recipe.task,
        "architecture": recipe.model.architecture,
        "scale": str(recipe.scale),
        "hyperparameters": json.dumps(dict(recipe.model.hyperparameters), sort_keys=True),
        "parameters": str(parameter_count(cpu_copy)),
        "flops_per_input_pixel": str(round(flops)),
        "gflops_per_640x360_frame": f"{flops * FRAME_640x360 / 1e9:.3f}",
        "recipe": recipe.name,
        "training": json.dumps(_portable(recipe.to_dict()), sort_keys=True),
        "steps": str(steps),
        "eval": "{}",
        "vsr_version": __version__,
        **(extra or {}),
    }
    tmp = out.with_name(f"{out.stem}.partial.safetensors")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_safetensors(tensors, tmp, meta)
        loaded = load_model(tmp)
        d = loaded.descriptor
        if d.architecture != recipe.model.architecture or d.scale != recipe.scale:
            raise ModelError(
                f"exported weights load back as {d.architecture} x{d.scale}, not "
                f"{recipe.model.architecture} x{recipe.scale}; this is a bug in the export"
            )
        if eval_folders:
            scores = (
                _denoise_scores(tmp, eval_folders, device)
                if denoiser
                else _scores(
                    tmp,
                    eval_folders,
                    recipe.scale,
                    device,
                    realistic=recipe.data.degradation == "realistic",
                )
            )
            meta["eval"] = json.dumps(scores, sort_keys=True)
            _write_safetensors(tensors, tmp, meta)
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(f"cannot write {out} ({exc.strerror or exc}); check the path") from exc
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s: %s params, %s FLOP/pixel", out, meta["parameters"], meta["flops_per_input_pixel"])
    return meta


def _cpu_float_copy(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).to("cpu", torch.float32, memory_format=torch.contiguous_format).eval()


def export_run(
    run_dir: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    device: str = "cpu",
    eval_folders: Sequence[str] | None = None,
) -> dict[str, str]:
    """Export the EMA weights of a run's last checkpoint (``vsr train --export-only``).

    ``eval_folders`` defaults to the recipe's ``data.report`` folders.
    """
    state = load_checkpoint(run_dir)
    if state is None:
        raise ConfigError(f"{run_dir} has no checkpoint (last.pt) to export; train first or check --run-dir")
    saved = state["recipe"]
    recipe = recipe_from_dict(saved, name=str(saved["name"]))
    module = build_model(recipe).module
    module.load_state_dict(state["ema"]["module"])
    return export_weights(
        module,
        path,
        recipe=recipe,
        steps=int(state["step"]),
        eval_folders=recipe.data.report if eval_folders is None else eval_folders,
        device=device,
        extra={"precision_trained": str(state["precision"])},
    )
