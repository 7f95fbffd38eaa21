"""`vsr train RECIPE --run-dir DIR`: train (or resume) a recipe; `--export-only` writes its weights."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from vsr.cli.errors import reports_errors
from vsr.errors import Cancelled, ConfigError

__all__ = ["train_command"]

Opt = typer.Option


def _format_record(record: dict[str, Any], total: int) -> str:
    parts = [f"step {record['step']}/{total}"]
    if record.get("loss") is not None:
        parts.append(f"loss {record['loss']:.5f}")
    if "d_loss" in record:
        parts.append(f"g_adv {record['g_adv']:.4f}  d_loss {record['d_loss']:.4f}")
    parts.append(f"lr {record['lr']:.2e}")
    if "val_psnr_y" in record:
        parts.append(f"val {record['val_psnr_y']:.3f} dB")
    if "val_psnr_rgb" in record:  # a denoiser's, at sigma 25
        parts.append(f"val {record['val_psnr_rgb']:.3f} dB RGB")
    if "val_gradient_ratio" in record:
        parts.append(f"sharpness {record['val_gradient_ratio']:.3f}")
    parts.append(f"{record['steps_per_s']:.2f} steps/s")
    minutes, seconds = divmod(int(record["seconds"]), 60)
    parts.append(f"{minutes}:{seconds:02d}")
    return "  ".join(parts)


def _export_summary(meta: dict[str, str], path: str) -> str:
    return (
        f"exported {path}: {meta['architecture']} x{meta['scale']}, {meta['parameters']} parameters, "
        f"{meta['gflops_per_640x360_frame']} GFLOP per 640x360 frame, eval {meta['eval']}"
    )


@reports_errors
def train_command(
    recipe: Annotated[
        str | None, typer.Argument(help="Training recipe (configs/train/*.toml).", show_default=False)
    ] = None,
    run_dir: Annotated[str, Opt("--run-dir", help="Folder for the checkpoint (last.pt) and log.jsonl.")] = "",
    resume: Annotated[
        bool, Opt("--resume", help="Continue the run in --run-dir (starts it if it has no checkpoint).")
    ] = False,
    max_minutes: Annotated[
        float | None,
        Opt(
            "--max-minutes", help="Stop with a checkpoint within this many minutes (--export adds its eval)."
        ),
    ] = None,
    steps: Annotated[
        int | None, Opt("--steps", help="Train this many steps in all (default: the recipe's).")
    ] = None,
    export: Annotated[
        str | None, Opt("--export", help="Write the EMA weights to this .safetensors file when done.")
    ] = None,
    export_only: Annotated[
        bool, Opt("--export-only", help="Only export the run's last checkpoint to --export.")
    ] = False,
    device: Annotated[str, Opt(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Train an SR model or a denoiser from a TOML recipe; resumable, seeded, logged to RUN_DIR/log.jsonl."""
    started = time.monotonic()  # --max-minutes covers setup (imports, decoding images) too
    from vsr.train import Trainer, export_run, load_recipe

    if not run_dir:
        raise ConfigError("--run-dir is required (e.g. --run-dir runs/fast-x2)")
    if export_only:
        if export is None:
            raise ConfigError("--export-only needs --export FILE.safetensors")
        meta = export_run(run_dir, export, device="cpu" if device == "auto" else device)
        typer.echo(_export_summary(meta, export), err=True)
        return
    if recipe is None:
        raise ConfigError("give a recipe (configs/train/NAME.toml), or --export-only")
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {steps}")
    if max_minutes is not None and max_minutes <= 0:
        raise ConfigError(f"--max-minutes must be positive, got {max_minutes}")
    if export is not None and Path(export).suffix != ".safetensors":
        raise ConfigError(f"--export {export} must end in .safetensors")

    total: list[int] = [0]
    trainer = Trainer(
        load_recipe(recipe),
        run_dir,
        resume=resume,
        steps=steps,
        device=device,
        on_record=lambda r: typer.echo(_format_record(r, total[0]), err=True),
    )
    total[0] = trainer.total_steps
    start = "resuming at step" if trainer.step else "starting at step"
    typer.echo(
        f"{trainer.recipe.name}: {start} {trainer.step}/{trainer.total_steps} on {trainer.device} "
        f"({trainer.precision}), {trainer.descriptor.parameters} parameters, run folder {run_dir}",
        err=True,
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        trainer.request_stop()
        # A second Ctrl-C is not caught: the checkpoint on disk is always a complete one.
        for s, handler in previous.items():
            signal.signal(s, handler)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = trainer.run(max_minutes=max_minutes, since=started)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    val = f", val {result.val_psnr_y:.3f} dB" if result.val_psnr_y is not None else ""
    typer.echo(
        f"stopped ({result.reason}) at step {result.step}/{result.total_steps} after "
        f"{result.seconds / 60:.1f} min{val}; checkpoint {result.checkpoint}",
        err=True,
    )
    if result.reason == "interrupted":
        raise Cancelled(f"training interrupted at step {result.step}; continue with --resume")
    if export is not None:
        typer.echo(_export_summary(trainer.export(export), export), err=True)
