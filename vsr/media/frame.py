"""`Frame`: one decoded picture travelling from Source to Sink, with its exact timestamp."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from vsr.media.color import ColorDescription

__all__ = ["PIXEL_FORMATS", "Frame", "PixelLayout", "pixel_layout"]


@dataclass(frozen=True, slots=True)
class PixelLayout:
    """How a pixel format's planes are laid out; what the device colour conversion needs."""

    family: str  # "yuv" (planar Y, U, V), "nv" (Y + interleaved UV), "gray", "rgb" (packed), "gbr" (planar G, B, R)
    bits: int  # significant bits per sample: 8, 10, 12 or 16
    chroma_w: int  # horizontal chroma subsampling shift (1 for 4:2:x, 0 for 4:4:4)
    chroma_h: int  # vertical chroma subsampling shift (1 for 4:2:0)
    full_range: bool = False  # the deprecated "yuvj" formats imply full range

    @property
    def dtype(self) -> type[np.generic]:
        return np.uint8 if self.bits == 8 else np.uint16


# Pixel formats the pipeline handles end to end without a host-side conversion. Anything else
# is converted by the Source once (swscale) into the nearest of these, and the run says so.
PIXEL_FORMATS: dict[str, PixelLayout] = {
    "yuv420p": PixelLayout("yuv", 8, 1, 1),
    "yuv422p": PixelLayout("yuv", 8, 1, 0),
    "yuv444p": PixelLayout("yuv", 8, 0, 0),
    "yuvj420p": PixelLayout("yuv", 8, 1, 1, full_range=True),
    "yuvj422p": PixelLayout("yuv", 8, 1, 0, full_range=True),
    "yuvj444p": PixelLayout("yuv", 8, 0, 0, full_range=True),
    "yuv420p10le": PixelLayout("yuv", 10, 1, 1),
    "yuv422p10le": PixelLayout("yuv", 10, 1, 0),
    "yuv444p10le": PixelLayout("yuv", 10, 0, 0),
    "yuv420p12le": PixelLayout("yuv", 12, 1, 1),
    "yuv444p12le": PixelLayout("yuv", 12, 0, 0),
    "nv12": PixelLayout("nv", 8, 1, 1),
    "p010le": PixelLayout("nv", 16, 1, 1),  # 10 significant bits in the high bits of 16
    "gray": PixelLayout("gray", 8, 0, 0),
    "gray10le": PixelLayout("gray", 10, 0, 0),
    "rgb24": PixelLayout("rgb", 8, 0, 0),
    "bgr24": PixelLayout("rgb", 8, 0, 0),
    "gbrp": PixelLayout("gbr", 8, 0, 0),
    "gbrp10le": PixelLayout("gbr", 10, 0, 0),
}


def pixel_layout(pix_fmt: str) -> PixelLayout:
    try:
        return PIXEL_FORMATS[pix_fmt]
    except KeyError:
        raise KeyError(f"pixel format {pix_fmt!r} is not one the pipeline handles directly") from None


@dataclass(slots=True, kw_only=True)
class Frame:
    """A decoded (or restored) picture.

    ``planes`` hold the samples as decoded, one 2-D array per plane (``(h, w)`` for planar
    formats, ``(h, w/2, 2)`` for the interleaved UV plane of nv12/p010le, ``(h, w, 3)`` for packed
    RGB), without line padding (they may be strided views into the decoder's buffer). ``pts`` is
    an integer in ``time_base``; it is never rebuilt from a frame rate.
    """

    index: int
    pts: int
    time_base: Fraction
    pix_fmt: str
    width: int
    height: int
    planes: tuple[np.ndarray, ...]
    color: ColorDescription
    key_frame: bool = False
    # How long the frame is shown, in ``time_base`` (the decoder's, from the input packet); 0 when
    # unknown. The muxer gives it to the encoded packet: it is the last frame's, and so the
    # file's, end, which no later pts tells.
    duration: int = 0
    # Wall-clock stamp (time.monotonic()) taken when the Source produced the frame; live sources
    # use it for latency accounting.
    produced_at: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)
