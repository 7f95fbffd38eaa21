"""`vsr models`: the models this install can run without a checkpoint, and what each one costs and scores."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from vsr.cli.errors import reports_errors
from vsr.models.builtin import BuiltinWeights, builtin_weights, default_builtin, file_sha256
from vsr.models.classic import CLASSIC_KERNELS

__all__ = ["models_command"]


def _row(w: BuiltinWeights, verified: bool) -> dict[str, Any]:
    m = w.metadata
    if m.get("task") == "denoise":  # RGB PSNR/SSIM per folder and noise level (the AWGN protocol)
        scores = {
            f"{folder} {level}": {"psnr_rgb": s["psnr_rgb"], "ssim_rgb": s["ssim_rgb"]}
            for folder, by_level in dict(m.get("eval", {})).items()
            for level, s in by_level.items()
        }
    else:  # Y PSNR/SSIM per folder (the SR protocol)
        scores = {
            folder: {"psnr_y": s["psnr_y"], "ssim_y": s["ssim_y"]}
            for folder, s in dict(m.get("eval", {})).items()
        }
    return {
        "name": w.name,
        "task": m.get("task", "sr"),
        "architecture": m.get("architecture"),
        "scale": w.scale,
        "parameters": int(m.get("parameters", 0)),
        "gflops_per_640x360_frame": float(m.get("gflops_per_640x360_frame", "nan")),
        "recipe": m.get("recipe"),
        "steps": int(m.get("steps", 0)),
        "eval": scores,
        "bytes": w.bytes,
        "sha256": w.sha256,
        "sha256_ok": verified,
    }


def _line(row: dict[str, Any]) -> str:
    scores = (
        "  ".join(f"{k} {v.get('psnr_y', v.get('psnr_rgb')):.2f} dB" for k, v in row["eval"].items())
        or "not evaluated"
    )
    check = "" if row["sha256_ok"] else "  DAMAGED (sha256 differs: reinstall vsr)"
    return (
        f"{row['name']:<12} {row['architecture']} x{row['scale']}, {row['parameters']:,} params, "
        f"{row['gflops_per_640x360_frame']:.2f} GFLOP/640x360 frame, {scores}, "
        f"sha256 {row['sha256'][:12]}{check}"
    )


@reports_errors
def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the built-in models (trained weights shipped with vsr, and the classic resizers)."""
    shipped = builtin_weights()
    rows = [_row(w, file_sha256(w.path) == w.sha256) for w in shipped.values()]
    defaults = {
        device: {s: (d.name if (d := default_builtin(s, device)) else "lanczos") for s in (2, 4)}
        for device in ("cpu", "cuda")
    }
    if as_json:
        typer.echo(json.dumps({"models": rows, "classic": list(CLASSIC_KERNELS), "auto": defaults}, indent=2))
    else:
        for row in rows:
            typer.echo(_line(row))
        if not rows:
            typer.echo("no trained built-in models are installed")
        typer.echo(f"{'classic':<12} {', '.join(CLASSIC_KERNELS)} (any scale 1-8, no weights)")
        for device, by_scale in defaults.items():
            picks = ", ".join(f"x{s} -> {name}" for s, name in by_scale.items())
            typer.echo(f"--model auto on {device}: {picks}")
    if not all(r["sha256_ok"] for r in rows):
        raise typer.Exit(1)
