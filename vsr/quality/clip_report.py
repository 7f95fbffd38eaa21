"""A clip evaluation's results: one row per Restore configuration, as markdown, CSV and JSON.

Each row holds the means over the clip's frames of the image protocol's scores and the clip's
flicker (`vsr.quality.flicker`): the output's warping error, the ground truth's own over the same
pixels, and their ratio. The JSON has every frame's scores as well.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any

from vsr.quality.flicker import FlickerScores
from vsr.quality.report import PROTOCOL, ImageResult

__all__ = [
    "FLICKER_PROTOCOL",
    "ClipReport",
    "ClipResult",
    "CropsInfo",
    "clip_csv",
    "clip_markdown",
    "clip_mean_line",
]

FLICKER_PROTOCOL = (
    "warping error: mean |output t - output t-1 warped with DIS flow (medium) of the ground truth|, "
    "0..255 averaged over RGB, over the pixels whose source is inside the frame and whose ground truth "
    "survives the same warp (mismatch <= 20 levels); the ground truth's own over the same pixels; mean over pairs"
)


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass(frozen=True, kw_only=True)
class ClipResult:
    config: str  # e.g. "temporal on, strength 0.5"
    temporal: bool
    temporal_strength: float | None  # None with temporal off
    denoise: float | str | None  # None: off; "auto" or a sigma
    denoise_temporal: bool = False  # with denoise: the motion-compensated average first
    frames: tuple[ImageResult, ...]
    flicker: FlickerScores | None  # None for a one-frame clip
    reuse_still: bool = False
    # the Restore stage's wall time per frame, the first frame (warm-up) left out; None for one frame
    restore_ms: float | None = None

    def _mean(self, field: str) -> float:
        return math.fsum(getattr(r, field) for r in self.frames) / len(self.frames)

    @property
    def psnr_y(self) -> float:
        return self._mean("psnr_y")

    @property
    def ssim_y(self) -> float:
        return self._mean("ssim_y")

    @property
    def psnr_rgb(self) -> float:
        return self._mean("psnr_rgb")

    def to_dict(self) -> dict[str, Any]:
        f = self.flicker
        return {
            "config": self.config,
            "temporal": self.temporal,
            "temporal_strength": self.temporal_strength,
            "denoise": self.denoise,
            "denoise_temporal": self.denoise_temporal,
            "reuse_still": self.reuse_still,
            "psnr_y": _num(self.psnr_y),
            "ssim_y": self.ssim_y,
            "psnr_rgb": _num(self.psnr_rgb),
            "restore_ms_per_frame": self.restore_ms,
            "flicker": None
            if f is None
            else {
                "warping_error": f.output,
                "warping_error_truth": f.ground_truth,
                "ratio": _num(f.ratio),
                "pairs": f.pairs,
                "valid_fraction": f.valid_fraction,
            },
            "frames": [
                {"name": r.name, "psnr_y": _num(r.psnr_y), "ssim_y": r.ssim_y, "psnr_rgb": _num(r.psnr_rgb)}
                for r in self.frames
            ],
        }


@dataclass(frozen=True, kw_only=True)
class CropsInfo:
    """Where the flicker crops come from: ground-truth pixels ``size`` square at (x, y)."""

    path: str
    frames: tuple[int, ...]  # the frame index of each column
    x: int
    y: int
    size: int
    zoom: int
    chosen_by: str  # how the region was picked, in words

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "frames": list(self.frames),
            "x": self.x,
            "y": self.y,
            "size": self.size,
            "zoom": self.zoom,
            "chosen_by": self.chosen_by,
        }


@dataclass(frozen=True, kw_only=True)
class ClipReport:
    clip: str
    model: str
    scale: int
    width: int  # of the modcropped ground truth
    height: int
    degradation: str  # how the LR input was made, in words
    rows: tuple[ClipResult, ...]
    notes: tuple[str, ...] = ()  # what the Restore steps saw (e.g. the auto noise estimates)
    crops: CropsInfo | None = None

    def __post_init__(self) -> None:
        if not self.rows:
            raise ValueError("a clip report needs at least one configuration")

    @property
    def frame_count(self) -> int:
        return len(self.rows[0].frames)

    def to_dict(self) -> dict[str, Any]:
        return {
            "clip": self.clip,
            "model": self.model,
            "scale": self.scale,
            "frames": self.frame_count,
            "width": self.width,
            "height": self.height,
            "input": self.degradation,
            "protocol": PROTOCOL,
            "flicker_protocol": FLICKER_PROTOCOL,
            "configurations": [r.to_dict() for r in self.rows],
            "notes": list(self.notes),
            "crops": None if self.crops is None else self.crops.to_dict(),
        }


def _frames(count: int) -> str:
    return f"{count} frame{'' if count == 1 else 's'}"


def _flicker_cells(f: FlickerScores | None) -> tuple[str, str, str]:
    if f is None:
        return "-", "-", "-"
    return f"{f.output:.3f}", f"{f.ground_truth:.3f}", f"{f.ratio:.2f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def clip_markdown(report: ClipReport) -> str:
    lines = [
        f"{report.clip}: {_frames(report.frame_count)} {report.width}x{report.height}, {report.model} "
        f"x{report.scale}; input: {report.degradation}",
        "",
        "| configuration | PSNR-Y (dB) | SSIM-Y | PSNR-RGB (dB) | warping error | truth's | ratio "
        "| Restore ms/frame |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report.rows:
        out, truth, ratio = _flicker_cells(r.flicker)
        lines.append(
            f"| {r.config} | {r.psnr_y:.2f} | {r.ssim_y:.4f} | {r.psnr_rgb:.2f} | {out} | {truth} | {ratio} "
            f"| {_ms(r.restore_ms)} |"
        )
    lines += [""] + [f"note: {n}" for n in report.notes] if report.notes else []
    if report.crops is not None:
        c = report.crops
        lines += [
            "",
            f"crops: {c.path} (frames {', '.join(map(str, c.frames))}, {c.size}x{c.size} at x={c.x} y={c.y}, "
            f"where {c.chosen_by})",
        ]
    return "\n".join(lines) + "\n"


def clip_csv(report: ClipReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            *("config", "frames", "width", "height", "psnr_y", "ssim_y", "psnr_rgb"),
            *("warping_error", "warping_error_truth", "warping_error_ratio", "valid_fraction"),
            "restore_ms_per_frame",
        ]
    )
    for r in report.rows:
        f = r.flicker
        flick = ("", "", "", "") if f is None else (f.output, f.ground_truth, f.ratio, f.valid_fraction)
        scores = (r.psnr_y, r.ssim_y, r.psnr_rgb, *flick, "" if r.restore_ms is None else r.restore_ms)
        # full precision: a CSV is read by programs, which round for themselves
        cells = [x if isinstance(x, str) else repr(x) for x in scores]
        writer.writerow([r.config, report.frame_count, report.width, report.height, *cells])
    return buf.getvalue()


def clip_mean_line(report: ClipReport) -> str:
    """One line per configuration with its means, the figures people quote."""
    head = f"{report.model} x{report.scale} on {_frames(report.frame_count)}"
    lines = []
    for r in report.rows:
        f = r.flicker
        flick = (
            ""
            if f is None
            else f", warping error {f.output:.3f} (truth {f.ground_truth:.3f}, x{f.ratio:.2f})"
        )
        timing = "" if r.restore_ms is None else f", Restore {r.restore_ms:.1f} ms/frame"
        lines.append(
            f"{head}, {r.config}: PSNR-Y {r.psnr_y:.2f} dB, SSIM-Y {r.ssim_y:.4f}, "
            f"PSNR-RGB {r.psnr_rgb:.2f} dB{flick}{timing}"
        )
    return "\n".join(lines)
