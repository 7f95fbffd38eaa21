"""`vsr eval FOLDER|CLIP`: PSNR/SSIM of a model, or the bicubic baseline, on images or a clip's frames.

On a folder, ``--degradation realistic`` makes each LR with the training's realistic chain (blur,
resize, noise, JPEG, H.264; seeded by ``--seed``) instead of the protocol's bicubic: how GAN models
for real video are judged. Every folder report carries the set's gradient ratio (sharpness) and
colour offset beside PSNR/SSIM. ``--noise SIGMA`` runs the colour-denoising protocol instead
(`vsr.quality.denoising`): the model must be a denoiser, and ``-m none`` scores the noisy input
itself.

On a clip (`vsr.quality.video`), each configuration of the Restore stage is a row with PSNR, SSIM
and flicker: ``--temporal``, ``--temporal-strength``, ``--reuse-still`` and ``--denoise`` take `vsr upscale`'s values
and may be repeated, every combination of the values given being a row
(``--temporal off --temporal on``: two rows). ``--noise SIGMA`` and ``--h264 RATE`` make the
low-resolution input noisy and compressed (`vsr.quality.clip_degrade`); ``--crops DIR`` writes the
region that flickers most over consecutive frames, each row's output above the truth's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, get_args

import typer

from vsr.cli.errors import reports_errors
from vsr.cli.reports import check_report_path
from vsr.errors import ConfigError, OutputError
from vsr.models.classic import CLASSIC_KERNELS
from vsr.pipeline.options import DEFAULT_TEMPORAL_STRENGTH
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
from vsr.quality.clip_degrade import ClipDegradation
from vsr.quality.clip_report import ClipReport
from vsr.quality.video import clip_configs, evaluate_clip

__all__ = ["eval_command"]

Opt = typer.Option
_SUFFIX_FORMATS: dict[str, ReportFormat] = {".md": "md", ".csv": "csv", ".json": "json"}


_CLIP_ONLY = (
    "--temporal",
    "--temporal-strength",
    "--denoise",
    "--denoiser",
    "--h264",
    "--compile",
    "--reuse-still",
    "--denoise-temporal",
)


def _parse_bitrate(text: str) -> int:
    """'300k' -> 300000 bits per second; also '1.5M' and plain numbers."""
    t = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if factor != 1 else t) * factor
    except ValueError:
        raise ConfigError(
            f"--h264 must be a bitrate such as 300k or 1.5M (bits per second), got {text!r}"
        ) from None
    if not 0 < value < float("inf"):
        raise ConfigError(f"--h264 must be a positive bitrate, got {text!r}")
    return round(value)


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
    models: Annotated[
        list[str] | None,
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
        str | None,
        Opt(
            help="Folder for comparison crops (PNG): bicubic | model | ground truth per image; for a clip, "
            "4 frames of the region where --temporal on removes the most flicker (without such a row: "
            "where the clip flickers most), each row's output and the truth's."
        ),
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
            help="A folder: evaluate a denoiser, adding Gaussian noise of this sigma (0..255 scale, e.g. 25) "
            "with a fixed seed; RGB PSNR/SSIM, no border cut. A clip: add such noise, fresh in every "
            "frame, to the low-resolution input.",
        ),
    ] = None,
    temporal: Annotated[
        list[str] | None,
        Opt(
            help="A clip: off or on, as in vsr upscale; repeat for a row each (--temporal off --temporal on)."
        ),
    ] = None,
    reuse_still: Annotated[
        list[str] | None,
        Opt(
            "--reuse-still",
            help="A clip: off or on, still-frame and changed-region reuse as in vsr upscale; repeat for a row each.",
        ),
    ] = None,
    temporal_strength: Annotated[
        list[float] | None,
        Opt(
            help=f"A clip: the --temporal on rows' strength, 0..1; repeat for a row each. [default: {DEFAULT_TEMPORAL_STRENGTH:g}]"
        ),
    ] = None,
    denoise: Annotated[
        list[str] | None,
        Opt(help="A clip: off, auto or a sigma (0..255), as in vsr upscale; repeat for a row each."),
    ] = None,
    denoiser: Annotated[
        str | None,
        Opt(
            help="A clip: the denoiser of the --denoise rows (a checkpoint or a built-in name). [default: denoise-lite]"
        ),
    ] = None,
    denoise_temporal: Annotated[
        list[str] | None,
        Opt(
            help="A clip: off or on, as in vsr upscale, for the --denoise rows; repeat for a row each. [default: on]"
        ),
    ] = None,
    h264: Annotated[
        str | None,
        Opt(
            "--h264",
            help="A clip: compress the low-resolution input with H.264 (libx264) at this bitrate, e.g. 300k.",
        ),
    ] = None,
    degradation: Annotated[
        str | None,
        Opt(
            help="A folder: bicubic (the SR protocol) or realistic (blur, resize, noise, JPEG and H.264, "
            "as the GAN models are trained on). [default: bicubic]"
        ),
    ] = None,
    seed: Annotated[
        int | None,
        Opt(help="--degradation realistic: the seed; image i gets (seed, i). [default: 0]"),
    ] = None,
    compile: Annotated[
        bool | None,
        Opt(
            "--compile/--no-compile",
            help="A clip: run the model and denoiser through torch.compile builds, as vsr upscale does "
            "on a CPU (the Restore times are then upscale's). [default: off]",
        ),
    ] = None,
) -> None:
    """Score a model on a folder, or on a video clip's frames: the standard SR protocol (MATLAB-bicubic
    LR, Y-channel PSNR/SSIM, border cut), or with --noise the colour-denoising one (Gaussian noise, RGB
    PSNR/SSIM). A clip gets a row per Restore configuration, with flicker (warping error) beside it."""
    report_format = _choose_format(fmt, out)
    check_report_path(out, "--out")
    if models and len(models) > 1:  # a single-valued option would keep the last one silently
        raise ConfigError(
            f"-m takes one model per run, got {len(models)}: {', '.join(models)}; run vsr eval once for each"
        )
    model = models[0] if models else None
    report: EvalReport | DenoiseReport | ClipReport
    clip_only = (temporal, temporal_strength, denoise, denoiser, h264, compile, reuse_still, denoise_temporal)
    if degradation not in (None, "bicubic", "realistic"):
        raise ConfigError(f"--degradation must be bicubic or realistic, got {degradation!r}")
    if seed is not None and degradation != "realistic":
        raise ConfigError("--seed applies to --degradation realistic")
    if seed is not None and seed < 0:
        raise ConfigError(f"--seed must be 0 or more, got {seed}")
    if degradation is not None and (Path(folder).is_file() or noise is not None):
        raise ConfigError(
            "--degradation applies to the SR protocol on a folder; a clip's LR takes --noise and --h264"
            if Path(folder).is_file()
            else "--degradation applies to the SR protocol; --noise evaluates a denoiser"
        )
    if Path(folder).is_file():
        if model == NOISY_BASELINE:
            raise ConfigError("-m none is the noisy-input baseline of --noise on image folders; give a model")
        configs = clip_configs(
            temporal or (),
            temporal_strength or (),
            denoise or (),
            denoiser=denoiser,
            reuse=reuse_still or (),
            denoise_temporal=denoise_temporal or (),
        )
        degradation = ClipDegradation(
            noise=noise or 0.0, h264_bitrate=None if h264 is None else _parse_bitrate(h264)
        )
        report = evaluate_clip(
            folder, model or BICUBIC, scale=scale, frames=frames, device=device, precision=precision,
            configs=configs, degradation=degradation, denoiser=denoiser, crops=crops, compile=bool(compile),
        )  # fmt: skip
    elif given := [name for name, value in zip(_CLIP_ONLY, clip_only, strict=True) if value is not None]:
        verb = "applies" if len(given) == 1 else "apply"
        raise ConfigError(f"{', '.join(given)} {verb} to a video clip; {folder} is not a file")
    elif noise is None:
        if model == NOISY_BASELINE:
            raise ConfigError("-m none is the noisy-input baseline of --noise; give --noise SIGMA or a model")
        if frames is not None:
            raise ConfigError("--frames applies to a video clip; a folder is scored image by image")
        report = evaluate_folder(
            folder, model or BICUBIC, scale=scale, device=device, precision=precision, crops=crops,
            degradation="realistic" if degradation == "realistic" else "bicubic", seed=seed or 0,
        )  # fmt: skip
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
