"""How a run on still images is planned (`plan_images`), and what `vsr probe` says of an image."""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import torch

from vsr.backends import resolve_device, resolve_precision
from vsr.errors import ConfigError, InputError, ModelError
from vsr.media import StillImage, read_image
from vsr.media.images import image_frames
from vsr.models import LoadedModel
from vsr.pipeline.options import UpscaleOptions
from vsr.pipeline.plan import output_size, resolve_model, wanted_scale

__all__ = ["ImagePlan", "check_still", "describe_image", "plan_images"]


def check_still(src: Path) -> None:
    """An image file given alone must be a still: an animation is a video, or cannot be read."""
    frames = image_frames(src)
    if frames > 1 and src.suffix.lower() == ".webp":
        raise InputError(
            f"{src} is an animated WebP ({frames} frames), whose animation FFmpeg cannot decode; "
            "convert it to a video or an animated PNG first"
        )
    if frames > 1:
        raise ConfigError(
            f"{src} is animated ({frames} frames); give a video output (.mp4, .mkv, .mov) to "
            "upscale every frame"
        )


def _image_backend(requested: str) -> str:
    """Images come in every size, so they run where any size runs: torch or onnxruntime (dynamic
    axes). TensorRT engines hold fixed shape ranges (built for a video's frame size)."""
    if requested in ("auto", "torch"):
        return "torch"
    if requested == "onnxruntime":
        return requested
    if requested in ("tensorrt", "tensorrt-rtx"):
        raise ConfigError(
            f"--backend {requested} is for videos (its engines are built for one frame size); "
            "images run with --backend torch or onnxruntime"
        )
    raise ConfigError(f"unknown backend {requested!r}; images run with auto, torch or onnxruntime")


@dataclass(frozen=True, kw_only=True)
class ImagePlan:
    """Where and how images run: the model, device, backend and precision, and the tile overlap."""

    model: LoadedModel
    device: torch.device
    backend: str
    precision: str
    tile_overlap: int
    notes: tuple[str, ...] = ()

    def describe(self, options: UpscaleOptions) -> list[str]:
        tiles = f", tiles of {options.tile}px with {self.tile_overlap}px overlap" if options.tile else ""
        return [
            f"model:     {self.model.descriptor.summary()}",
            f"backend:   {self.backend} on {self.device} ({self.precision}){tiles}",
        ]


def plan_images(first: StillImage, options: UpscaleOptions, model: LoadedModel | None = None) -> ImagePlan:
    """The plan for images like ``first`` (`--model auto` with `--size` picks its scale from it)."""
    notes: list[str] = []
    device = resolve_device(options.device)
    if model is None:
        model, model_notes = resolve_model(options.model, wanted_scale(first.size, options), device.type)
        notes += model_notes
    d = model.descriptor
    if d.in_channels != 3 or d.out_channels != 3 or d.temporal_window != 1:
        raise ModelError(f"model {d.name} is not a single-frame RGB model; images need one")
    return ImagePlan(
        model=model,
        device=device,
        backend=_image_backend(options.backend),
        precision=resolve_precision(options.precision, device, d),
        # the same default as the video plan's: the receptive radius, capped at 32 pixels
        tile_overlap=options.tile_overlap
        if options.tile_overlap is not None
        else min(d.receptive_radius, 32),
        notes=tuple(notes),
    )


def describe_image(path: str | PathLike[str], options: UpscaleOptions) -> list[str]:
    """`vsr probe` for a still image: what it is, and what `vsr upscale` would do with it."""
    p = Path(path)
    check_still(p)
    image = read_image(p)
    plan = plan_images(image, options)
    size, size_notes = output_size(image.size, plan.model.descriptor.scale, options, 0, 0)
    kind = "grey" if image.grey else "RGB"
    extras = (", alpha" if image.alpha is not None else "") + (", ICC profile" if image.icc_profile else "")
    w, h = image.size
    lines = [
        f"file:      {p} (image, {p.stat().st_size / 1e6:.1f} MB)",
        f"image:     {w}x{h} {kind} ({image.bits}-bit){extras}",
        "plan:",
        *(f"  {line}" for line in plan.describe(options)),
        f"  resize:    {w}x{h} -> model x{plan.model.descriptor.scale} -> {size[0]}x{size[1]}",
    ]
    return lines + [f"  note:      {n}" for n in (*image.notes, *plan.notes, *size_notes)]
