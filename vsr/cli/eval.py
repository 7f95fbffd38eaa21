"""`vsr eval FOLDER|CLIP`: PSNR/SSIM of a model, or the bicubic baseline, on images or a clip's frames.

With ``--noise SIGMA`` it runs the colour-denoising protocol instead (`vsr.quality.denoising`):
the model must be a denoiser, and ``-m none`` scores the noisy input itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, get_args

import typer

from vsr.cli.errors import reports_errors
from vsr.errors import ConfigError, OutputError
from vsr.models.classic import CLASSIC_KERNELS
from vsr.quality import (
    BICUBIC,
    NOISY_BASELINE,
    DenoiseReport,
    EvalReport,
    ReportFormat,
    evaluate_denoising,
    evaluate_folder,
    format_report,
    mean_line,
)
from vsr.quality.video import evaluate_clip

__all__ = ["eval_command"]

Opt = typer.Option
_SUFFIX_FORMATS: dict[str, ReportFormat] = {".md": "md", ".csv": "csv", ".json": "json"}


def _choose_format(fmt: str | None, out: str | None) -> ReportFormat:
    if fmt is None:
        # An --out file's suffix says what it should hold; otherwise a table for people.
        return _SUFFIX_FORMATS.get(Path(out).suffix.lower(), "md") if out else "md"
    if fmt not in get_args(ReportFormat):
        raise ConfigError(f"unknown format {fmt!r}; use md, csv or json")
    return fmt  # type: ignore[return-value]


@reports_errors
def eval_command(
    folder: Annotated[
        str,
        typer.Argument(
            help="Folder of ground-truth images (PNG, BMP, TIFF), or a video clip: each frame a ground truth."
        ),
    ],
    model: Annotated[
        str | None,
        Opt(
            "--model",
            "-m",
            help="bicubic (the default baseline), lanczos, or a checkpoint (.safetensors/.pth); "
            "with --noise: a denoiser checkpoint, or none (the default: the noisy input).",
        ),
    ] = None,
    scale: Annotated[
        int | None, Opt("--scale", "-s", help="Scale factor (default: the checkpoint's; bicubic needs one).")
    ] = None,
    fmt: Annotated[
        str | None, Opt("--format", "-f", help="md, csv or json (default: from --out's suffix, else md).")
    ] = None,
    out: Annotated[
        str | None, Opt("--out", "-o", help="Write the report here; the terminal then gets the table.")
    ] = None,
    crops: Annotated[
        str | None, Opt(help="Folder for bicubic | model | ground-truth comparison crops (PNG).")
    ] = None,
    device: Annotated[str, Opt(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[str, Opt(help="fp32, fp16, bf16 or auto.")] = "fp32",
    frames: Annotated[
        int | None, Opt("--frames", help="A video clip: score its first N frames only. [default: all]")
    ] = None,
    noise: Annotated[
        float | None,
        Opt(
            "--noise",
            help="Evaluate a denoiser: add Gaussian noise of this sigma (0..255 scale, e.g. 25) "
            "with a fixed seed; RGB PSNR/SSIM, no border cut.",
        ),
    ] = None,
) -> None:
    """Score a model on a folder, or on a video clip's frames: the standard SR protocol (MATLAB-bicubic
    LR, Y-channel PSNR/SSIM, border cut), or with --noise the colour-denoising one (Gaussian noise, RGB
    PSNR/SSIM)."""
    report_format = _choose_format(fmt, out)
    report: EvalReport | DenoiseReport
    if noise is None:
        if model == NOISY_BASELINE:
            raise ConfigError("-m none is the noisy-input baseline of --noise; give --noise SIGMA or a model")
        if Path(folder).is_file():
            if crops is not None:
                raise ConfigError("--crops works on image folders, not on video clips")
            report = evaluate_clip(
                folder, model or BICUBIC, scale=scale, frames=frames, device=device, precision=precision
            )
        elif frames is not None:
            raise ConfigError("--frames applies to a video clip; a folder is scored image by image")
        else:
            report = evaluate_folder(
                folder, model or BICUBIC, scale=scale, device=device, precision=precision, crops=crops
            )
    else:
        if scale not in (None, 1):
            raise ConfigError(f"--scale {scale} does not apply to --noise: a denoiser keeps the image size")
        if frames is not None:
            raise ConfigError("--frames applies to a video clip; --noise scores a folder of images")
        if model in CLASSIC_KERNELS:
            raise ConfigError(
                f"{model} is a resizer, not a denoiser; with --noise use a denoiser checkpoint or -m none"
            )
        report = evaluate_denoising(
            folder, model or NOISY_BASELINE, sigma=noise, device=device, precision=precision, crops=crops
        )
    text = format_report(report, report_format)
    if out is not None:
        path = Path(out)
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write report {path} ({exc.strerror or exc}); check the path") from exc
        typer.echo(format_report(report, "md"), nl=False)
        typer.echo(mean_line(report))
        return
    typer.echo(text, nl=False)
    # stdout of csv/json stays parseable; the summary line goes beside it, on stderr.
    typer.echo(mean_line(report), err=report_format != "md")
