"""`ImageJob`: `vsr upscale` for one still image or a folder of them.

The video path's decisions are reused piece by piece, so an image and a video frame of the same
size come out the same: the model (`resolve_model`, the same ``auto``), device and precision, the
output size of ``--scale``/``--size`` and the restore step itself (`restore_rgb`: padding to the
model's size multiple, tiling, the exact final resize). What differs is what a still image is: its
RGB samples go to the model as they are (no YUV round trip), grey is replicated to RGB for the
model and averaged back, and alpha is resized with the classic bicubic. Encoder options mean
nothing for images: they are ignored with a note rather than refused, so that one TOML preset
serves videos and images alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsr.backends import Backend, BackendOptions, create_backend
from vsr.errors import Cancelled, ConfigError, InputError, OutputError, VsrError
from vsr.media import IMAGE_SUFFIXES, StillImage, is_image_file, read_image, write_image
from vsr.media.containers import CONTAINERS, check_output_path
from vsr.media.images import image_frames
from vsr.models import LoadedModel
from vsr.ops.resize import resize
from vsr.pipeline.image_plan import check_still, plan_images
from vsr.pipeline.options import UpscaleOptions, load_options
from vsr.pipeline.plan import output_size
from vsr.pipeline.restore import restore_rgb
from vsr.text import counted

__all__ = [
    "VIDEO_ONLY_OPTIONS",
    "ImageJob",
    "ImageRunSummary",
    "UpscaledImage",
    "is_image_input",
    "upscale_images",
]

log = logging.getLogger(__name__)

# Options that only the encoder or the frame queues read; an image run ignores them (with a note).
VIDEO_ONLY_OPTIONS = (
    "codec",
    "crf",
    "preset",
    "pix_fmt",
    "encoder_threads",
    "encoder_instances",
    "deinterlace",
    "batch",
    "queue_size",
    "temporal",
    "temporal_strength",
    "reuse_still",
    "reuse_regions",
    # the pre-pass lives in the video Restore stage only, for now
    "denoise",
    "denoiser",
)


def is_image_input(path: str | PathLike[str], output: str | PathLike[str] | None = None) -> bool:
    """A folder (of images) or a file whose suffix names an image format, unless it is an animated
    PNG going to a video ``output``: FFmpeg decodes every frame of that, with its timing."""
    if Path(path).is_dir():
        return True
    if not is_image_file(path):
        return False
    animated_png = Path(path).suffix.lower() == ".png" and image_frames(path) > 1
    return not (animated_png and output is not None and not is_image_file(output))


@dataclass(frozen=True, kw_only=True)
class UpscaledImage:
    input: str
    output: str
    input_size: tuple[int, int]  # (width, height), upright
    output_size: tuple[int, int]
    seconds: float  # read, restore and write


@dataclass(frozen=True, kw_only=True)
class ImageRunSummary:
    input: str
    output: str
    images: tuple[UpscaledImage, ...]
    wall_s: float
    model: str
    backend: str
    device: str
    precision: str
    notes: tuple[str, ...] = ()

    @property
    def per_image_s(self) -> float:
        return self.wall_s / len(self.images) if self.images else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "completed": True,
            "image_count": len(self.images),
            "wall_s": round(self.wall_s, 3),
            "per_image_s": round(self.per_image_s, 3),
            "model": self.model,
            "backend": self.backend,
            "device": self.device,
            "precision": self.precision,
            "images": [
                {
                    "input": i.input,
                    "output": i.output,
                    "input_size": list(i.input_size),
                    "output_size": list(i.output_size),
                    "seconds": round(i.seconds, 3),
                }
                for i in self.images
            ],
            "notes": list(self.notes),
        }


def _pairs(src: Path, dst: Path, *, overwrite: bool) -> list[tuple[Path, Path]]:
    """(input, output) per image, after every check that needs no decoding."""
    if src.is_dir():
        images = sorted(p for p in src.iterdir() if p.is_file() and is_image_file(p))
        if not images:
            raise InputError(
                f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {src}; give a folder of images"
            )
        # a video name too: "frames/ out.mp4" is more likely a mistake than a folder wanted so named
        if is_image_file(dst) or dst.suffix.lower() in CONTAINERS or (dst.exists() and not dst.is_dir()):
            raise ConfigError(f"a folder input needs an output folder, got {dst}")
        if dst.exists() and dst.resolve() == src.resolve():
            raise ConfigError(f"output folder {dst} is the input folder; choose another one")
        pairs = [(p, dst / p.name) for p in images]
    else:
        if not src.exists():
            raise InputError(f"input not found: {src}")
        check_still(src)
        if not is_image_file(dst):
            raise ConfigError(
                f"an image input needs an image output ({', '.join(IMAGE_SUFFIXES)}), got {dst}"
            )
        check_output_path(dst, [src])
        pairs = [(src, dst)]
    existing = [out for _, out in pairs if out.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise ConfigError(f"output {existing[0]} exists{more}; pass --overwrite to replace it")
    return pairs


# options whose flag is not their name with dashes (encoder_threads has no flag: the API's and a
# preset's name is shown)
_FLAGS = {"encoder_instances": "--encoders", "encoder_threads": "encoder_threads"}


def _ignored_options(options: UpscaleOptions) -> list[str]:
    defaults = UpscaleOptions()
    return [
        _FLAGS.get(n, "--" + n.replace("_", "-"))
        for n in VIDEO_ONLY_OPTIONS
        if getattr(options, n) != getattr(defaults, n)
    ]


class ImageJob:
    """One run of `vsr upscale` for an image or a folder. Construct (checks, loads), then `run()`."""

    def __init__(
        self,
        input_path: str | PathLike[str],
        output_path: str | PathLike[str],
        options: UpscaleOptions | None = None,
        *,
        model: LoadedModel | None = None,
    ) -> None:
        self.options = options = options or UpscaleOptions()
        self.input_path, self.output_path = Path(input_path), Path(output_path)
        self.is_folder = self.input_path.is_dir()
        self.pairs = _pairs(self.input_path, self.output_path, overwrite=options.overwrite)
        self._notes: dict[str, None] = {}  # ordered and without repeats: every image says the same
        ignored = _ignored_options(options)
        if ignored:
            self._note(f"video-only option(s) ignored for images: {', '.join(ignored)}")
        # The first image is read now: `--model auto` with `--size` picks its scale from it.
        self._first: StillImage | None = read_image(self.pairs[0][0])
        self.plan = plan = plan_images(self._first, options, model)
        for n in plan.notes:
            self._note(n)
        self.model, self.device, self.backend_name = plan.model, plan.device, plan.backend
        self.precision, self.tile_overlap = plan.precision, plan.tile_overlap
        self._cancelled = False

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(self._notes)

    def _note(self, text: str) -> None:
        self._notes[text] = None

    def describe(self) -> list[str]:
        where = (
            f"{counted(len(self.pairs), 'image')} in {self.input_path}"
            if self.is_folder
            else str(self.input_path)
        )
        lines = [*self.plan.describe(self.options), f"images:    {where} -> {self.output_path}"]
        return lines + [f"note:      {n}" for n in self.notes]

    def cancel(self) -> None:
        """Stop after the image in progress (safe from a signal handler)."""
        self._cancelled = True

    def run(self, on_image: Callable[[UpscaledImage, int, int], None] | None = None) -> ImageRunSummary:
        """Upscale every image; ``on_image(done, index, total)`` after each one is written."""
        started = time.perf_counter()
        backend = create_backend(
            self.backend_name,
            self.model,
            BackendOptions(device=self.device, precision=self.precision, channels_last=True),
        )
        if self.is_folder:
            try:
                self.output_path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(
                    f"cannot create output folder {self.output_path} ({exc.strerror or exc})"
                ) from exc
        done: list[UpscaledImage] = []
        for index, (src, dst) in enumerate(self.pairs):
            if self._cancelled:
                raise Cancelled(
                    f"interrupted after {len(done)} of {len(self.pairs)} images{self._kept(done)}"
                )
            try:
                done.append(self._one(backend, src, dst))
            except VsrError as exc:
                if not self.is_folder:
                    raise
                err = type(exc)(f"{exc}; {len(done)} of {len(self.pairs)} images were written before it")
                raise err from exc
            if on_image is not None:
                on_image(done[-1], index, len(self.pairs))
        return ImageRunSummary(
            input=str(self.input_path),
            output=str(self.output_path),
            images=tuple(done),
            wall_s=time.perf_counter() - started,
            model=self.model.descriptor.summary(),
            backend=self.backend_name,
            device=str(self.device),
            precision=self.precision,
            notes=self.notes,
        )

    def _kept(self, done: list[UpscaledImage]) -> str:
        return f"; those are complete in {self.output_path}" if done else ""

    def _one(self, backend: Backend, src: Path, dst: Path) -> UpscaledImage:
        started = time.perf_counter()
        if self._first is not None:
            image, self._first = self._first, None
        else:
            image = read_image(src)
        for n in image.notes:
            self._note(n)
        size, size_notes = output_size(image.size, self.model.descriptor.scale, self.options, 0, 0)
        for n in size_notes:
            self._note(n)
        if image.bits == 16 and self.precision != "fp32":
            self._note(
                f"16-bit input runs through the model in {self.precision}; --precision fp32 keeps more of it"
            )
        result = self._restore(backend, image, size)
        for n in write_image(dst, result):
            self._note(n)
        log.debug("%s -> %s (%dx%d)", src, dst, *size)
        return UpscaledImage(
            input=str(src),
            output=str(dst),
            input_size=image.size,
            output_size=size,
            seconds=time.perf_counter() - started,
        )

    def _restore(self, backend: Backend, image: StillImage, size: tuple[int, int]) -> StillImage:
        peak = float((1 << image.bits) - 1)
        device = self.device

        def tensor(pixels: np.ndarray) -> torch.Tensor:
            # uint16 has few torch ops; int32 holds it exactly on the way to float
            return torch.from_numpy(pixels.astype(np.int32) if pixels.dtype == np.uint16 else pixels).to(
                device
            )

        def samples(x: torch.Tensor) -> np.ndarray:
            codes = (x * peak).round_().to("cpu", torch.int32).numpy()
            return codes.astype(np.uint16 if image.bits == 16 else np.uint8)

        colour = tensor(image.colour).to(torch.float32) / peak
        rgb = colour[None].expand(3, -1, -1) if image.grey else colour.permute(2, 0, 1)
        with torch.inference_mode():
            out = restore_rgb(
                backend.run,
                self.model.descriptor,
                rgb[None].contiguous(),
                output_size=size,
                tile=self.options.tile,
                tile_overlap=self.tile_overlap,
            )[0]
            # The model saw R = G = B; what differs between its outputs is noise, which the mean averages.
            restored = samples(out.mean(dim=0) if image.grey else out.permute(1, 2, 0))
            alpha = None
            if image.alpha is not None:
                a = tensor(image.alpha).to(torch.float32)[None, None] / peak
                alpha = samples(resize(a, (size[1], size[0]), kernel="bicubic")[0, 0].clamp_(0.0, 1.0))
        return StillImage(colour=restored, alpha=alpha, icc_profile=image.icc_profile)


def upscale_images(
    input: str | PathLike[str],
    output: str | PathLike[str],
    options: UpscaleOptions | None = None,
    *,
    on_image: Callable[[UpscaledImage, int, int], None] | None = None,
    **option_values: Any,
) -> ImageRunSummary:
    """Upscale an image file, or every image of a folder into an output folder (same names).

    Options as for `vsr.upscale`; encoder options are ignored (with a note in the summary).
    """
    if options is not None and option_values:
        raise TypeError("pass either options= or option keywords, not both")
    if options is not None and not isinstance(options, UpscaleOptions):
        raise ConfigError(
            f"options must be an UpscaleOptions (or the options as keywords), got {type(options).__name__}"
        )
    if options is None:
        options = load_options(None, **option_values)
    return ImageJob(input, output, options).run(on_image)
