"""An evaluation's results and their renderings: a markdown table, CSV and JSON.

`EvalReport` is the super-resolution protocol's, `DenoiseReport` the denoising protocol's
(`vsr.quality.denoising`), `ClipReport` a video clip's (`vsr.quality.clip_report`); `format_report`
and `mean_line` take any of them.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from vsr.text import counted

if TYPE_CHECKING:
    from vsr.quality.clip_report import ClipReport

__all__ = [
    "DenoiseReport",
    "DenoiseResult",
    "EvalReport",
    "ImageResult",
    "LrDegradation",
    "ReportFormat",
    "format_report",
    "mean_line",
]

ReportFormat = Literal["md", "csv", "json"]
LrDegradation = Literal["bicubic", "realistic"]

PROTOCOL = (
    "HR modcropped to the scale; LR = MATLAB imresize(HR, 1/scale, 'bicubic') rounded to uint8; "
    "Y = MATLAB rgb2ycbcr on uint8 (rounded), scale pixels shaved from each border"
)
REALISTIC_PROTOCOL = (
    "HR modcropped to the scale; LR = vsr.train.realistic.degrade_realistic(HR, scale, "
    "seed=(seed, image index in name order)) with the default RealisticParams (blur, resize, noise, "
    "JPEG, H.264, rounded to uint8); Y = MATLAB rgb2ycbcr on uint8 (rounded), scale pixels shaved "
    "from each border"
)
DENOISE_PROTOCOL = (
    "noisy = clean + sigma * N(0, 1) per channel in float64 on 0..255, not clipped or rounded, "
    "noise from numpy default_rng((seed, image index in name order)); output clipped and rounded to "
    "uint8; PSNR over RGB on 0..255 with no border cut; SSIM the mean of the three channels'"
)


@dataclass(frozen=True, kw_only=True)
class ImageResult:
    name: str
    width: int  # of the modcropped ground truth, the size scored
    height: int
    psnr_y: float
    ssim_y: float
    psnr_rgb: float


@dataclass(frozen=True, kw_only=True)
class EvalReport:
    folder: str
    model: str  # the descriptor's summary, or "bicubic"
    scale: int
    rows: tuple[ImageResult, ...]
    # what a row is ("image", or "frame" for a video clip); only the summary line says it, so one
    # parser reads the tables, CSV and JSON of both
    unit: str = "image"
    degradation: LrDegradation = "bicubic"  # how each LR was made from its ground truth
    seed: int | None = None  # the realistic degradation's
    # the set's mean |grad Y| over the truths' (vsr.quality.sharpness; 1: as sharp) and the mean
    # signed R, G, B offset from the truths in 0..255 units, both on the border-shaved images
    gradient_ratio: float | None = None
    colour_offset: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if not self.rows:
            raise ValueError("an evaluation report needs at least one image")

    def _mean(self, field: str) -> float:
        return math.fsum(getattr(r, field) for r in self.rows) / len(self.rows)

    @property
    def mean_psnr_y(self) -> float:
        return self._mean("psnr_y")

    @property
    def mean_ssim_y(self) -> float:
        return self._mean("ssim_y")

    @property
    def mean_psnr_rgb(self) -> float:
        return self._mean("psnr_rgb")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON; an infinite PSNR (identical images) becomes ``None``."""

        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        extra: dict[str, Any] = {}
        if self.degradation != "bicubic":
            extra = {"degradation": self.degradation, "seed": self.seed}
        if self.gradient_ratio is not None:
            extra["gradient_ratio"] = self.gradient_ratio
        if self.colour_offset is not None:
            extra["colour_offset_rgb"] = list(self.colour_offset)
        return {
            "folder": self.folder,
            "model": self.model,
            "scale": self.scale,
            "protocol": PROTOCOL if self.degradation == "bicubic" else REALISTIC_PROTOCOL,
            **extra,
            "images": [
                {
                    "name": r.name,
                    "width": r.width,
                    "height": r.height,
                    "psnr_y": num(r.psnr_y),
                    "ssim_y": r.ssim_y,
                    "psnr_rgb": num(r.psnr_rgb),
                }
                for r in self.rows
            ],
            "mean": {
                "psnr_y": num(self.mean_psnr_y),
                "ssim_y": self.mean_ssim_y,
                "psnr_rgb": num(self.mean_psnr_rgb),
            },
        }


def _markdown(report: EvalReport) -> str:
    lines = [
        "| image | size | PSNR-Y (dB) | SSIM-Y | PSNR-RGB (dB) |",
        "|---|---|---:|---:|---:|",
    ]
    for r in report.rows:
        lines.append(
            f"| {r.name} | {r.width}x{r.height} | {r.psnr_y:.2f} | {r.ssim_y:.4f} | {r.psnr_rgb:.2f} |"
        )
    lines.append(
        f"| **mean** | | **{report.mean_psnr_y:.2f}** | **{report.mean_ssim_y:.4f}** "
        f"| **{report.mean_psnr_rgb:.2f}** |"
    )
    return "\n".join(lines) + "\n"


def _csv(report: EvalReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "width", "height", "psnr_y", "ssim_y", "psnr_rgb"])
    # Full precision: a CSV is read by programs, which round for themselves.
    for r in report.rows:
        writer.writerow([r.name, r.width, r.height, repr(r.psnr_y), repr(r.ssim_y), repr(r.psnr_rgb)])
    writer.writerow(
        ["mean", "", "", repr(report.mean_psnr_y), repr(report.mean_ssim_y), repr(report.mean_psnr_rgb)]
    )
    return buf.getvalue()


@dataclass(frozen=True, kw_only=True)
class DenoiseResult:
    name: str
    width: int
    height: int
    psnr_rgb: float
    ssim_rgb: float


@dataclass(frozen=True, kw_only=True)
class DenoiseReport:
    folder: str
    model: str  # the checkpoint's name, or "none (noisy input)"
    sigma: float  # on the 0..255 scale
    seed: int
    rows: tuple[DenoiseResult, ...]

    def __post_init__(self) -> None:
        if not self.rows:
            raise ValueError("an evaluation report needs at least one image")

    @property
    def mean_psnr_rgb(self) -> float:
        return math.fsum(r.psnr_rgb for r in self.rows) / len(self.rows)

    @property
    def mean_ssim_rgb(self) -> float:
        return math.fsum(r.ssim_rgb for r in self.rows) / len(self.rows)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON; an infinite PSNR (identical images) becomes ``None``."""

        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "folder": self.folder,
            "model": self.model,
            "sigma": self.sigma,
            "seed": self.seed,
            "protocol": DENOISE_PROTOCOL,
            "images": [
                {
                    "name": r.name,
                    "width": r.width,
                    "height": r.height,
                    "psnr_rgb": num(r.psnr_rgb),
                    "ssim_rgb": r.ssim_rgb,
                }
                for r in self.rows
            ],
            "mean": {"psnr_rgb": num(self.mean_psnr_rgb), "ssim_rgb": self.mean_ssim_rgb},
        }


def _denoise_markdown(report: DenoiseReport) -> str:
    lines = ["| image | size | PSNR-RGB (dB) | SSIM-RGB |", "|---|---|---:|---:|"]
    for r in report.rows:
        lines.append(f"| {r.name} | {r.width}x{r.height} | {r.psnr_rgb:.2f} | {r.ssim_rgb:.4f} |")
    lines.append(f"| **mean** | | **{report.mean_psnr_rgb:.2f}** | **{report.mean_ssim_rgb:.4f}** |")
    return "\n".join(lines) + "\n"


def _denoise_csv(report: DenoiseReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "width", "height", "psnr_rgb", "ssim_rgb"])
    for r in report.rows:
        writer.writerow([r.name, r.width, r.height, repr(r.psnr_rgb), repr(r.ssim_rgb)])
    writer.writerow(["mean", "", "", repr(report.mean_psnr_rgb), repr(report.mean_ssim_rgb)])
    return buf.getvalue()


def format_report(report: EvalReport | DenoiseReport | ClipReport, fmt: ReportFormat = "md") -> str:
    """The report as a markdown table, CSV (one row per image, then the mean) or JSON."""
    # imported here: clip_report builds on this module's rows and protocol text
    from vsr.quality.clip_report import ClipReport, clip_csv, clip_markdown

    if fmt == "md":
        if isinstance(report, ClipReport):
            return clip_markdown(report)
        return _denoise_markdown(report) if isinstance(report, DenoiseReport) else _markdown(report)
    if fmt == "csv":
        if isinstance(report, ClipReport):
            return clip_csv(report)
        return _denoise_csv(report) if isinstance(report, DenoiseReport) else _csv(report)
    if fmt == "json":
        # allow_nan=False: strict JSON, which to_dict guarantees by mapping inf to null.
        return json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(get_args(ReportFormat))}")


def mean_line(report: EvalReport | DenoiseReport | ClipReport) -> str:
    """One line with the means, the figure people quote (a clip's: one per configuration)."""
    from vsr.quality.clip_report import ClipReport, clip_mean_line

    if isinstance(report, ClipReport):
        return clip_mean_line(report)
    if isinstance(report, DenoiseReport):
        return (
            f"{report.model} at sigma {report.sigma:g} on {counted(len(report.rows), 'image')}: "
            f"PSNR-RGB {report.mean_psnr_rgb:.2f} dB, SSIM-RGB {report.mean_ssim_rgb:.4f}"
        )
    where = "" if report.degradation == "bicubic" else f" ({report.degradation} LR, seed {report.seed})"
    line = (
        f"{report.model} x{report.scale} on {len(report.rows)} {report.unit}s{where}: "
        f"PSNR-Y {report.mean_psnr_y:.2f} dB, SSIM-Y {report.mean_ssim_y:.4f}, "
        f"PSNR-RGB {report.mean_psnr_rgb:.2f} dB"
    )
    if report.gradient_ratio is not None:
        line += f", gradient ratio {report.gradient_ratio:.3f}"
    if report.colour_offset is not None:
        line += ", colour offset RGB " + "/".join(f"{c:+.2f}" for c in report.colour_offset)
    return line
