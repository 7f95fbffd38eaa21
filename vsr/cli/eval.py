"""`vsr eval FOLDER`: PSNR/SSIM of a model, or the bicubic baseline, on a folder of images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, get_args

import typer

from vsr.cli.errors import reports_errors
from vsr.errors import ConfigError, OutputError
from vsr.quality import ReportFormat, evaluate_folder, format_report, mean_line

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
    folder: Annotated[str, typer.Argument(help="Folder of ground-truth images (PNG, BMP, TIFF).")],
    model: Annotated[
        str,
        Opt("--model", "-m", help="bicubic (the baseline), lanczos, or a checkpoint (.safetensors/.pth)."),
    ] = "bicubic",
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
) -> None:
    """Score a model on a folder with the standard SR protocol: MATLAB-bicubic LR, Y-channel PSNR/SSIM, border cut."""
    report_format = _choose_format(fmt, out)
    report = evaluate_folder(folder, model, scale=scale, device=device, precision=precision, crops=crops)
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
