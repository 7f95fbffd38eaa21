"""Still images as files: read one into upright pixels, write a result back under its final name.

Pillow reads every format (PNG, JPEG, BMP, TIFF, WebP) and applies the EXIF orientation, so the
pixels are the ones a viewer shows. Pillow cannot hold 16-bit colour (it reads a 48-bit PNG as
24-bit without a word), so 16-bit colour PNG/TIFF files are decoded by OpenCV, and 16-bit results
are written by OpenCV: 16 bits stay 16 bits where the output format stores them (PNG, TIFF) and
become 8 bits with a note elsewhere. Greyscale stays greyscale and alpha is kept, except where the
output format cannot store it (then a note says what was dropped). JPEG and WebP are written at
quality 95: Pillow's defaults (75, 80) visibly soften the detail an upscaler adds. A file is written
under a temporary name and renamed when complete, so a final name never holds half an image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from vsr.errors import InputError, OutputError
from vsr.media.containers import partial_path

__all__ = [
    "IMAGE_SUFFIXES",
    "StillImage",
    "image_frames",
    "is_image_file",
    "pillow_rawmode",
    "read_image",
    "upright",
    "write_image",
]

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
_KINDS = "PNG, JPEG, BMP, TIFF or WebP"
_ORIENTATION_TAG = 0x0112
_LOSSY_QUALITY = 95


@dataclass(frozen=True, slots=True)
class _Writer:
    pillow_format: str
    name: str
    grey: bool  # stores a single grey channel (WebP has none: Pillow writes grey as RGB)
    alpha: bool  # stores transparency (Pillow's BMP writes 32 bits but reads them back as RGB)
    deep: bool  # stores 16 bits per sample


_WRITERS = {
    ".png": _Writer("PNG", "PNG", grey=True, alpha=True, deep=True),
    ".tif": _Writer("TIFF", "TIFF", grey=True, alpha=True, deep=True),
    ".tiff": _Writer("TIFF", "TIFF", grey=True, alpha=True, deep=True),
    ".jpg": _Writer("JPEG", "JPEG", grey=True, alpha=False, deep=False),
    ".jpeg": _Writer("JPEG", "JPEG", grey=True, alpha=False, deep=False),
    ".bmp": _Writer("BMP", "BMP", grey=True, alpha=False, deep=False),
    ".webp": _Writer("WEBP", "WebP", grey=False, alpha=True, deep=False),
}
_GREY16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


@dataclass(frozen=True, kw_only=True, eq=False)
class StillImage:
    """The pixels of one image, upright.

    ``colour`` is ``H x W`` (grey) or ``H x W x 3`` (RGB); ``alpha`` is ``H x W`` or None; both are
    uint8, or both uint16 for 16-bit images. ``icc_profile`` is carried into 8-bit outputs.
    """

    colour: NDArray[np.uint8] | NDArray[np.uint16]
    alpha: NDArray[np.uint8] | NDArray[np.uint16] | None = None
    icc_profile: bytes | None = None
    notes: tuple[str, ...] = ()

    @property
    def grey(self) -> bool:
        return self.colour.ndim == 2

    @property
    def bits(self) -> int:
        return 16 if self.colour.dtype == np.uint16 else 8

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.colour.shape[1], self.colour.shape[0]


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether the name says image (the suffix; the contents are only looked at when read)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def pillow_rawmode(im: Image.Image) -> str:
    """What the decoder unpacks from, e.g. "RGB;16B" for a 48-bit PNG that Pillow shows as "RGB"."""
    if not im.tile:
        return ""
    args = im.tile[0][3]
    if isinstance(args, str):
        return args
    return args[0] if isinstance(args, tuple) and args and isinstance(args[0], str) else ""


def upright(pixels: NDArray[np.generic], orientation: int) -> NDArray[np.generic]:
    """``pixels`` (``H x W`` or ``H x W x C``) turned as the EXIF orientation says, as Pillow's
    ``ImageOps.exif_transpose`` turns an image; for the 16-bit arrays Pillow cannot hold."""
    turns = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    turn = turns.get(orientation)
    return np.ascontiguousarray(turn(pixels)) if turn else pixels


def _deep_colour(path: Path, orientation: int, icc: bytes | None) -> StillImage:
    import cv2  # only 16-bit colour needs OpenCV, and importing it costs a fifth of a second

    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None or data.dtype != np.uint16 or data.ndim != 3 or data.shape[2] not in (3, 4):
        raise InputError(f"cannot decode the 16-bit image {path}; re-save it as a plain 16-bit PNG or TIFF")
    data = upright(data, orientation)
    rgb = np.ascontiguousarray(data[..., 2::-1])  # OpenCV's BGR(A) order
    alpha = np.ascontiguousarray(data[..., 3]) if data.shape[2] == 4 else None
    return StillImage(colour=rgb, alpha=alpha, icc_profile=icc)


def _from_pillow(path: Path, im: Image.Image, icc: bytes | None) -> StillImage:
    mode = im.mode
    if mode in _GREY16_MODES:
        return StillImage(colour=np.asarray(im).astype(np.uint16), icc_profile=icc)
    if mode == "I":  # 32-bit integer samples: how some TIFF readers hand out 16-bit grey
        values = np.asarray(im)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise InputError(f"image {path} has 32-bit integer samples; convert it to 8 or 16 bits")
        return StillImage(colour=values.astype(np.uint16), icc_profile=icc)
    if mode == "F":
        raise InputError(f"image {path} has floating-point samples; convert it to 8 or 16 bits")
    if mode in ("1", "L"):
        return StillImage(colour=np.asarray(im.convert("L")).copy(), icc_profile=icc)
    if mode in ("LA", "La"):
        la = np.asarray(im.convert("LA"))
        return StillImage(colour=la[..., 0].copy(), alpha=la[..., 1].copy(), icc_profile=icc)
    notes: tuple[str, ...] = ()
    has_alpha = mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in im.info)
    if mode not in ("RGB", "RGBA", "RGBa", "P", "PA"):
        notes = (f"{path.name} is {mode}: upscaled and written as RGB",)
        icc = None  # a CMYK/Lab profile does not describe the RGB pixels
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"))
        return StillImage(
            colour=rgba[..., :3].copy(), alpha=rgba[..., 3].copy(), icc_profile=icc, notes=notes
        )
    return StillImage(colour=np.asarray(im.convert("RGB")).copy(), icc_profile=icc, notes=notes)


def image_frames(path: str | os.PathLike[str]) -> int:
    """How many frames an image file holds: several for an animated PNG or WebP, else 1 (also
    when it cannot be read: reading it says why)."""
    try:
        with Image.open(path) as im:
            return int(getattr(im, "n_frames", 1))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return 1


def read_image(path: str | os.PathLike[str]) -> StillImage:
    """An image file as upright pixels: 8 or 16 bits, grey or RGB, with its alpha if it has one."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"input not found: {p}" if not p.exists() else f"input is not a file: {p}")
    try:
        with Image.open(p) as im:
            icc = im.info.get("icc_profile")
            frames = int(getattr(im, "n_frames", 1))
            if frames > 1:  # a folder's animated image: its first frame, and the user is told
                still = _still(p, im, icc)
                note = f"{p.name} is animated ({frames} frames); only its first frame is upscaled"
                return replace(still, notes=(*still.notes, note))
            return _still(p, im, icc)
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read image {p} ({reason}); is it a {_KINDS} image?") from exc


def _still(p: Path, im: Image.Image, icc: bytes | None) -> StillImage:
    if im.mode in ("RGB", "RGBA", "LA") and ";16" in pillow_rawmode(im):
        orientation = int(im.getexif().get(_ORIENTATION_TAG, 1))
        return _deep_colour(p, orientation, icc)
    return _from_pillow(p, ImageOps.exif_transpose(im), icc)


def _to_8_bits(x: NDArray[np.generic]) -> NDArray[np.uint8]:
    # 257 = 65535 / 255 exactly, so white stays white and the mapping is the usual one
    return np.floor(x.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)


def _save_pillow(
    tmp: Path,
    colour: NDArray[np.generic],
    alpha: NDArray[np.generic] | None,
    writer: _Writer,
    icc: bytes | None,
) -> None:
    im = Image.fromarray(colour)
    if alpha is not None:
        im = Image.merge("LA" if colour.ndim == 2 else "RGBA", [*im.split(), Image.fromarray(alpha)])
    options: dict[str, object] = {}
    if writer.pillow_format in ("JPEG", "WEBP"):
        options["quality"] = _LOSSY_QUALITY
    if icc and writer.pillow_format != "BMP":
        options["icc_profile"] = icc
    im.save(tmp, format=writer.pillow_format, **options)


def _save_opencv(tmp: Path, colour: NDArray[np.generic], alpha: NDArray[np.generic] | None) -> None:
    import cv2

    data = colour if colour.ndim == 2 else colour[..., ::-1]
    if alpha is not None:
        data = np.dstack([data, alpha])
    try:
        written = cv2.imwrite(str(tmp), np.ascontiguousarray(data))
    except cv2.error as exc:
        raise OSError(str(exc).strip().splitlines()[-1]) from exc
    if not written:
        raise OSError("the encoder refused the image")


def write_image(path: str | os.PathLike[str], image: StillImage) -> list[str]:
    """Write ``image`` as the format ``path``'s suffix names; returns notes on what it lost.

    The file appears under its final name only when complete; on any failure no file is left.
    """
    p = Path(path)
    writer = _WRITERS.get(p.suffix.lower())
    if writer is None:
        raise OutputError(f"cannot write {p}: not an image name; use one of {', '.join(IMAGE_SUFFIXES)}")
    colour, alpha, notes = image.colour, image.alpha, []
    if alpha is not None and not writer.alpha:
        alpha = None
        notes.append(f"{writer.name} has no alpha channel: {p.name} is written without its transparency")
    if image.bits == 16 and not writer.deep:
        colour, alpha = _to_8_bits(colour), None if alpha is None else _to_8_bits(alpha)
        notes.append(f"{writer.name} has no 16-bit samples: {p.name} is written with 8 bits")
    if colour.ndim == 2 and (not writer.grey or (alpha is not None and colour.dtype == np.uint16)):
        # WebP has no grey; OpenCV writes 1, 3 or 4 channels, so 16-bit grey+alpha goes as RGBA
        colour = np.repeat(colour[..., None], 3, axis=2)
        notes.append(f"{p.name} is grey but written as RGB ({writer.name} cannot store it as it is)")
    if colour.dtype == np.uint16 and image.icc_profile:
        notes.append(f"the ICC profile is not carried into 16-bit {p.name}")
    tmp = partial_path(p)
    try:
        if colour.dtype == np.uint16:
            _save_opencv(tmp, colour, alpha)
        else:
            _save_pillow(tmp, colour, alpha, writer, image.icc_profile)
        os.replace(tmp, p)
    except (OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise OutputError(f"cannot write {p} ({reason}); check the folder and free space") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return notes
