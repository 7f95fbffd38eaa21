"""`evaluate_clip`: a video's frames as ground truths, restored by `vsr upscale`'s own Restore stage.

Every decoded frame is turned into uint8 RGB with the frame's own matrix and range (untagged ones
resolved the way players guess, as the upscale pipeline does) by the pipeline's own colour maths,
modcropped and shrunk with the image protocol's MATLAB bicubic (then, if asked, made noisy and
H.264-compressed: `vsr.quality.clip_degrade`). The LR frames go, in order and one at a time, through
one `RestoreStage` per configuration (`ClipConfig`: ``--temporal``, ``--temporal-strength``,
``--denoise`` as `vsr upscale` takes them), rgb24 in and out, so what is scored is what `vsr upscale`
makes of the same frames. Each configuration gets the image protocol's scores, averaged over the
frames, the clip's flicker (`vsr.quality.flicker`) and the Restore stage's wall time per frame (the
stages take each frame in turn, so a change of load hits every row alike; the first frame, which
warms the kernels up, is not timed); ``crops`` writes `vsr.quality.flicker_crops`.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray

from vsr.backends import BackendOptions, create_backend, resolve_device, resolve_precision
from vsr.errors import ConfigError, InputError
from vsr.media import ColorDescription, FileSource, Frame, pixel_layout
from vsr.media.color import ColorMatrix, ColorRange
from vsr.models import LoadedModel, load_model
from vsr.models.classic import CLASSIC_KERNELS
from vsr.ops.color import planes_to_rgb
from vsr.pipeline.denoise_pass import check_denoiser, denoiser_to_load
from vsr.pipeline.options import DEFAULT_TEMPORAL_STRENGTH, UpscaleOptions
from vsr.pipeline.restore import RestoreConfig, RestoreStage
from vsr.pipeline.sample_format import sample_format
from vsr.quality.clip_degrade import ClipDegradation
from vsr.quality.clip_report import ClipReport, ClipResult, CropsInfo
from vsr.quality.evaluate import _SSIM_WINDOW, BICUBIC, check_sr_model
from vsr.quality.flicker import FlickerMeter
from vsr.quality.flicker_crops import CROPS_ZOOM, FlickerCropPicker, write_crops
from vsr.quality.protocol import modcrop, score, to_uint8
from vsr.quality.report import ImageResult

__all__ = ["ClipConfig", "clip_configs", "clip_frames", "evaluate_clip", "frame_to_rgb"]

log = logging.getLogger(__name__)

_RGB = ColorDescription(matrix=ColorMatrix.BT709, range=ColorRange.FULL, primaries=1, transfer=1)
_DEFAULT_RATE = Fraction(25)  # for the H.264 bitrate, when a clip does not say its frame rate


@dataclass(frozen=True, kw_only=True)
class ClipConfig:
    """One way of running the Restore stage: what `vsr upscale`'s options of the same names set."""

    temporal: bool = False
    temporal_strength: float = DEFAULT_TEMPORAL_STRENGTH
    denoise: float | Literal["auto"] | None = None  # None: off; a sigma on the 0..255 scale
    denoise_temporal: bool = True  # with denoise: the motion-compensated average first (as upscale)
    reuse_still: bool = False  # still-frame and changed-region reuse, as --reuse-still

    def label(
        self, *, with_denoise: bool, with_reuse: bool = False, with_denoise_temporal: bool = False
    ) -> str:
        """The row's name; ``with_*`` name the options whose value differs between rows."""
        parts = [f"temporal on, strength {self.temporal_strength:g}" if self.temporal else "temporal off"]
        if with_reuse:
            parts.append(f"reuse {'on' if self.reuse_still else 'off'}")
        if with_denoise:
            d = self.denoise
            parts.append("denoise " + ("off" if d is None else d if isinstance(d, str) else f"{d:g}"))
            if d is not None and with_denoise_temporal:
                parts[-1] += f" (denoise-temporal {'on' if self.denoise_temporal else 'off'})"
        return ", ".join(parts)


def clip_configs(
    temporal: Sequence[str] = (),
    temporal_strength: Sequence[float] = (),
    denoise: Sequence[str] = (),
    *,
    denoiser: str | None = None,
    reuse: Sequence[str] = (),
    denoise_temporal: Sequence[str] = (),
) -> list[ClipConfig]:
    """The configurations of every combination of the values given (none: that option off).

    Values mean what they mean to `vsr upscale` and are checked by its options; strengths apply
    to the ``on`` rows; ``reuse`` is off or on (--reuse-still); ``denoise_temporal`` (off, on;
    none: on, upscale's default) applies to the rows that denoise. Order: denoise values
    outermost, then denoise_temporal, then reuse, then temporal, then strength.
    """
    temporal, denoise = temporal or ("off",), denoise or ("off",)
    reuse = tuple(r.strip().lower() for r in reuse) or ("off",)
    if bad := [r for r in reuse if r not in ("off", "on")]:
        raise ConfigError(f"--reuse-still takes off or on, got {bad[0]!r}")
    if temporal_strength and "on" not in temporal:
        raise ConfigError("--temporal-strength applies to --temporal on; add --temporal on")
    strengths = temporal_strength or (UpscaleOptions().temporal_strength,)
    if denoiser is not None and all(str(d).strip().lower() == "off" for d in denoise):
        raise ConfigError("--denoiser is given but --denoise is off; add --denoise auto or --denoise SIGMA")
    averaging = tuple(v.strip().lower() for v in denoise_temporal) or ("on",)
    if denoise_temporal and all(str(d).strip().lower() == "off" for d in denoise):
        raise ConfigError(
            "--denoise-temporal applies to the rows that denoise; add --denoise auto or --denoise SIGMA"
        )
    configs: list[ClipConfig] = []
    for d, a, r, t in itertools.product(denoise, averaging, reuse, temporal):
        for s in strengths if t == "on" else strengths[:1]:
            off = str(d).strip().lower() == "off"
            o = UpscaleOptions(
                temporal=t,  # type: ignore[arg-type]
                temporal_strength=s,
                denoise=d,
                denoiser=None if off else denoiser,
                denoise_temporal=a,  # type: ignore[arg-type]
            )
            config = ClipConfig(
                temporal=o.temporal == "on",
                temporal_strength=float(s),
                denoise=o.denoise_level,
                denoise_temporal=not off and o.denoise_temporal == "on",
                reuse_still=r == "on",
            )
            if config not in configs:
                configs.append(config)
    return configs


def frame_to_rgb(frame: Frame) -> NDArray[np.uint8]:
    """A decoded `Frame` as uint8 ``H x W x 3`` RGB, converted with its own colour description."""
    color = frame.color.resolved(frame.height, full_range_format=pixel_layout(frame.pix_fmt).full_range)
    # a copy where the decoder's buffer is read-only: torch warns about non-writable arrays
    planes = tuple(torch.from_numpy(np.require(p, requirements="CW"))[None] for p in frame.planes)
    rgb = planes_to_rgb(planes, sample_format(frame.pix_fmt, color), dtype=torch.float64)
    return to_uint8(rgb[0].permute(1, 2, 0).numpy() * 255.0)


def _frames_of(source: FileSource, frames: int | None) -> Iterator[tuple[int, NDArray[np.uint8]]]:
    count = 0
    for item in source.items():
        if not isinstance(item, Frame):
            continue  # audio and subtitle packets
        yield item.index, frame_to_rgb(item)
        count += 1
        if frames is not None and count >= frames:
            return


def clip_frames(
    path: str | os.PathLike[str], frames: int | None = None
) -> Iterator[tuple[int, NDArray[np.uint8]]]:
    """(index, RGB) of the first ``frames`` frames of a video (all of them with None), in order."""
    if frames is not None and frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {frames}")
    # "off": the ground truth is the frames as stored; a deinterlacer's guess is not ground truth.
    with FileSource(path, deinterlace="off") as source:
        yield from _frames_of(source, frames)


def _sr_model(model: str, scale: int | None) -> LoadedModel:
    if scale is not None and scale < 1:
        raise ConfigError(f"scale must be 1 or more, got {scale}")
    if model in CLASSIC_KERNELS:
        if scale is None:
            raise ConfigError(f"the {model} baseline needs a scale; pass --scale (2, 3, 4, ...)")
        return load_model(model, scale=scale)
    loaded = load_model(model, scale=scale)  # refuses a checkpoint whose own scale is not the one asked
    check_sr_model(loaded.descriptor)
    return loaded


def _rgb_frame(index: int, lr: NDArray[np.uint8]) -> Frame:
    h, w = lr.shape[:2]
    return Frame(
        index=index, pts=index, time_base=Fraction(1, 25), pix_fmt="rgb24", width=w, height=h,
        planes=(lr,), color=_RGB,
    )  # fmt: skip


class _Scorer:
    """The stages, meters and crop picker of one clip, built when its first frame's size is known."""

    def __init__(
        self,
        loaded: LoadedModel,
        configs: Sequence[ClipConfig],
        *,
        size: tuple[int, int],
        device: torch.device,
        precision: str,
        denoiser: LoadedModel | None,
        crops: bool,
        compile: bool = False,
    ) -> None:
        d = loaded.descriptor
        options = BackendOptions(device=device, precision=precision, compile=compile)  # type: ignore[arg-type]
        backend = create_backend("torch", loaded, options)
        w, h = size
        self.stages = [
            RestoreStage(
                backend,
                d,
                RestoreConfig(
                    input_size=(w // d.scale, h // d.scale),
                    input_pix_fmt="rgb24",
                    input_color=_RGB,
                    output_size=(w, h),
                    output_pix_fmt="rgb24",
                    output_color=_RGB,
                    temporal=c.temporal,
                    temporal_strength=c.temporal_strength,
                    denoise=c.denoise,
                    denoise_temporal=c.denoise_temporal,
                    reuse_still=c.reuse_still,
                ),
                denoiser=denoiser,
                compile_denoiser=compile,
            )
            for c in configs
        ]
        self.rows: list[list[ImageResult]] = [[] for _ in configs]
        self.restore_s = [0.0] * len(configs)  # wall time in each stage, every frame but the first
        self.timed_frames = 0
        self.meter = FlickerMeter(len(configs))
        # the crops show where the first configuration with temporal smoothing removes the most
        # flicker from the first one without; with no such pair, where the first one flickers most
        chosen = next((k for k, c in enumerate(configs) if not c.temporal), 0)
        against = next((k for k, c in enumerate(configs) if c.temporal and k != chosen), None)
        self.picker = FlickerCropPicker(chosen, against) if crops else None
        self.scale = d.scale

    def __call__(self, index: int, hr: NDArray[np.uint8], lr: NDArray[np.uint8]) -> None:
        frame = _rgb_frame(index, lr)
        outputs = []
        for k, stage in enumerate(self.stages):  # interleaved per frame: a change of load hits all alike
            started = time.perf_counter()
            outputs.append(stage([frame])[0].planes[0])
            if self.rows[0]:  # the first frame warms the kernels up and is not timed
                self.restore_s[k] += time.perf_counter() - started
        self.timed_frames += bool(self.rows[0])
        h, w = hr.shape[:2]
        for rows, out in zip(self.rows, outputs, strict=True):
            s = score(out, hr, scale=self.scale)
            rows.append(
                ImageResult(
                    name=f"frame {index}",
                    width=w,
                    height=h,
                    psnr_y=s.psnr_y,
                    ssim_y=s.ssim_y,
                    psnr_rgb=s.psnr_rgb,
                )
            )
        errors = self.meter.update(hr, outputs)
        if errors is not None and self.picker is not None:
            self.picker.update(index, [*outputs, hr], errors)
        log.debug("frame %d: PSNR-Y %s", index, ", ".join(f"{r[-1].psnr_y:.2f}" for r in self.rows))


def evaluate_clip(
    path: str | os.PathLike[str],
    model: str = BICUBIC,
    *,
    scale: int | None = None,
    frames: int | None = None,
    device: str = "auto",
    precision: str = "fp32",
    configs: Sequence[ClipConfig] | None = None,
    degradation: ClipDegradation | None = None,
    denoiser: str | None = None,
    crops: str | os.PathLike[str] | None = None,
    compile: bool = False,
) -> ClipReport:
    """Score ``model`` on the first ``frames`` frames of a video (all with None), a row a configuration.

    ``model``, ``scale``, ``device`` and ``precision`` mean what they mean for `evaluate_folder`
    (``bicubic`` here is the Restore stage's bicubic module: within 0.001 dB of the protocol's).
    ``configs`` default to one, all steps off; ``degradation`` to the bicubic shrink alone.
    ``denoiser`` is the checkpoint of ``--denoise`` rows. With ``crops`` (a folder), the flicker
    crops are written there as ``<clip>_flicker.png``.
    """
    p = Path(path)
    configs = [ClipConfig()] if configs is None else list(configs)
    degradation = ClipDegradation() if degradation is None else degradation
    if not configs:
        raise ConfigError("nothing to evaluate: give at least one configuration")
    if frames is not None and frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {frames}")
    if crops is not None and frames is not None and frames < 2:
        raise ConfigError("--crops shows frames next to each other: give --frames 2 or more")
    loaded = _sr_model(model, scale)
    d = loaded.descriptor
    torch_device = resolve_device(device)
    resolved = resolve_precision(precision, torch_device, d)
    denoise_model = None
    if any(c.denoise is not None for c in configs):
        denoise_model = load_model(denoiser_to_load(denoiser))
        check_denoiser(denoise_model)
    scorer: _Scorer | None = None
    with FileSource(p, deinterlace="off") as source:  # the frames as stored are the ground truth
        rate = source.info.average_rate or _DEFAULT_RATE
        truths = ((i, modcrop(rgb, d.scale)) for i, rgb in _frames_of(source, frames))
        for index, hr, lr in degradation.pairs(truths, d.scale, rate):
            if scorer is None:
                h, w = hr.shape[:2]
                if min(h, w) < 2 * d.scale + _SSIM_WINDOW:
                    raise InputError(
                        f"frames of {p.name} are {w}x{h}, too small to score at x{d.scale}: "
                        f"needs {2 * d.scale + _SSIM_WINDOW} pixels a side after the border is cut"
                    )
                scorer = _Scorer(
                    loaded, configs, size=(w, h), device=torch_device, precision=resolved,
                    denoiser=denoise_model, crops=crops is not None, compile=compile,
                )  # fmt: skip
            scorer(index, hr, lr)
    if scorer is None:
        raise InputError(f"{p} has no decodable video frames; nothing to score")
    with_denoise = any(c.denoise is not None for c in configs)
    with_reuse = any(c.reuse_still for c in configs)
    averaged = {c.denoise_temporal for c in configs if c.denoise is not None}
    labels = [
        c.label(with_denoise=with_denoise, with_reuse=with_reuse, with_denoise_temporal=len(averaged) > 1)
        for c in configs
    ]
    flicker = scorer.meter.scores() if scorer.meter.pairs else [None] * len(configs)
    rows = tuple(
        ClipResult(
            config=label,
            temporal=c.temporal,
            temporal_strength=c.temporal_strength if c.temporal else None,
            denoise=c.denoise,
            denoise_temporal=c.denoise_temporal,
            reuse_still=c.reuse_still,
            frames=tuple(r),
            flicker=f,
            restore_ms=round(1000 * seconds / scorer.timed_frames, 1) if scorer.timed_frames else None,
        )
        for label, c, r, f, seconds in zip(
            labels, configs, scorer.rows, flicker, scorer.restore_s, strict=True
        )
    )
    notes = [f"{label}: {n}" for label, st in zip(labels, scorer.stages, strict=True) for n in st.run_notes()]
    crops_info = None
    if crops is not None:
        crops_info = _write_crops(Path(crops), p, scorer, labels)
    first = scorer.rows[0][0]
    # fp32 is the reference; any other precision is named so its numbers are not mistaken for fp32 ones.
    name = d.name if resolved == "fp32" else f"{d.name} ({resolved})"
    return ClipReport(
        clip=str(path), model=name, scale=d.scale, width=first.width, height=first.height,
        degradation=degradation.describe(d.scale), rows=rows, notes=tuple(notes), crops=crops_info,
    )  # fmt: skip


def _write_crops(folder: Path, clip: Path, scorer: _Scorer, labels: list[str]) -> CropsInfo:
    assert scorer.picker is not None
    window = scorer.picker.window()
    if window is None:
        raise InputError(f"{clip.name} has one frame: the flicker crops need two or more")
    path = write_crops(folder / f"{clip.stem}_flicker.png", window, [*labels, "ground truth"])
    return CropsInfo(
        path=str(path), frames=window.frames, x=window.x, y=window.y, size=window.size, zoom=CROPS_ZOOM,
        chosen_by=_chosen_by(scorer.picker, labels),
    )  # fmt: skip


def _chosen_by(picker: FlickerCropPicker, labels: list[str]) -> str:
    if picker.against is None:
        return f"{labels[picker.chosen]} flickers most beyond the ground truth"
    return f"{labels[picker.against]} lowers the warping error of {labels[picker.chosen]} most"
