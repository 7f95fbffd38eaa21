"""`HdrMetadata`: HDR10's static metadata (SMPTE ST 2086 mastering display, content light level).

A TV tone-maps PQ video to its own panel from these two; a re-encode that drops them leaves it
to guess, and bright highlights clip or the picture dims. The decoder hands them over as frame
side data (from HEVC SEI, AV1 metadata OBUs or the container's mdcv/clli boxes); the encoders
take them as options, each in its own syntax:

- libx264 / libx265: ``mastering-display``/``master-display`` = ``G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)``,
  chromaticity in units of 0.00002 and luminance in 0.0001 cd/m², and ``cll``/``max-cll`` =
  ``MaxCLL,MaxFALL`` in cd/m². x265 writes them in-stream only with ``hdr10=1``.
- libsvtav1: ``mastering-display`` in the same order with plain numbers (chromaticity, cd/m²)
  and ``content-light``.

The NVENC encoders take them only from FFmpeg's own side-data plumbing, which PyAV does not reach.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
import av.sidedata.sidedata

from vsr.media.side_data import frame_side_data

__all__ = ["ContentLight", "HdrMetadata", "MasteringDisplay", "hdr_encoder_options", "hdr_note", "hdr_of"]

# AVMasteringDisplayMetadata: AVRational display_primaries[3][2] (r, g, b), white_point[2],
# min_luminance, max_luminance; int has_primaries, has_luminance
_MASTERING = struct.Struct("<22i")
# AVContentLightMetadata: unsigned MaxCLL, MaxFALL
_LIGHT = struct.Struct("<2I")

_CHROMA_UNIT = 50_000  # x264/x265: chromaticity in 0.00002
_LUMA_UNIT = 10_000  # x264/x265: luminance in 0.0001 cd/m²

Point = tuple[Fraction, Fraction]


@dataclass(frozen=True, slots=True)
class MasteringDisplay:
    red: Point
    green: Point
    blue: Point
    white: Point
    min_luminance: Fraction  # cd/m²
    max_luminance: Fraction

    def x26x(self) -> str:
        """x264's and x265's syntax: chromaticity in 0.00002, luminance in 0.0001 cd/m²."""
        return self._encoder_syntax(
            lambda p: f"{round(p[0] * _CHROMA_UNIT)},{round(p[1] * _CHROMA_UNIT)}",
            lambda v: str(round(v * _LUMA_UNIT)),
        )

    def svt(self) -> str:
        """SVT-AV1's: the same order, plain numbers."""
        return self._encoder_syntax(
            lambda p: f"{float(p[0]):.5f},{float(p[1]):.5f}", lambda v: f"{float(v):.4f}"
        )

    def _encoder_syntax(self, point: Callable[[Point], str], luminance: Callable[[Fraction], str]) -> str:
        return (
            f"G({point(self.green)})B({point(self.blue)})R({point(self.red)})WP({point(self.white)})"
            f"L({luminance(self.max_luminance)},{luminance(self.min_luminance)})"
        )

    def describe(self) -> str:
        def point(p: Point) -> str:
            return f"({float(p[0]):.4f},{float(p[1]):.4f})"

        return (
            f"R{point(self.red)} G{point(self.green)} B{point(self.blue)} WP{point(self.white)}, "
            f"{float(self.min_luminance):g}-{float(self.max_luminance):g} cd/m²"
        )


@dataclass(frozen=True, slots=True)
class ContentLight:
    max_cll: int  # cd/m²
    max_fall: int


@dataclass(frozen=True, slots=True)
class HdrMetadata:
    mastering: MasteringDisplay | None = None
    light: ContentLight | None = None

    def describe(self) -> str:
        parts = []
        if self.mastering is not None:
            parts.append(f"mastering display {self.mastering.describe()}")
        if self.light is not None:
            parts.append(f"MaxCLL {self.light.max_cll} MaxFALL {self.light.max_fall} cd/m²")
        return "; ".join(parts)


def _mastering(data: bytes) -> MasteringDisplay | None:
    if len(data) < _MASTERING.size:
        return None
    v = _MASTERING.unpack_from(data)
    if not (v[20] and v[21]):  # x26x and SVT-AV1 take the primaries and the luminance together
        return None
    if any(den == 0 for den in v[1:20:2]):
        return None
    q = [Fraction(v[i], v[i + 1]) for i in range(0, 20, 2)]
    return MasteringDisplay(
        red=(q[0], q[1]),
        green=(q[2], q[3]),
        blue=(q[4], q[5]),
        white=(q[6], q[7]),
        min_luminance=q[8],
        max_luminance=q[9],
    )


def hdr_of(frame: av.VideoFrame) -> HdrMetadata | None:
    """The HDR10 static metadata a decoded frame carries, or None."""
    mastering = light = None
    for item in frame_side_data(frame):
        if item.type == av.sidedata.sidedata.Type.MASTERING_DISPLAY_METADATA:
            mastering = _mastering(bytes(item))
        elif item.type == av.sidedata.sidedata.Type.CONTENT_LIGHT_LEVEL:
            data = bytes(item)
            light = ContentLight(*_LIGHT.unpack_from(data)) if len(data) >= _LIGHT.size else None
    if mastering is None and light is None:
        return None
    return HdrMetadata(mastering, light)


@dataclass(frozen=True, slots=True)
class _Syntax:
    option: str  # the encoder's parameter list
    first: tuple[str, ...]  # parameters that come before the metadata
    mastering: str
    written: Callable[[MasteringDisplay], str]
    light: str


_SYNTAX = {
    "libx264": _Syntax("x264-params", (), "mastering-display", MasteringDisplay.x26x, "cll"),
    "libx265": _Syntax("x265-params", ("hdr10=1",), "master-display", MasteringDisplay.x26x, "max-cll"),
    "libsvtav1": _Syntax("svtav1-params", (), "mastering-display", MasteringDisplay.svt, "content-light"),
}


def hdr_encoder_options(codec: str, hdr: HdrMetadata) -> dict[str, str] | None:
    """Options that make ``codec`` write ``hdr`` into its stream; None when it has no way to."""
    syntax = _SYNTAX.get(codec)
    if syntax is None:
        return None
    params = list(syntax.first)
    if hdr.mastering is not None:
        params.append(f"{syntax.mastering}={syntax.written(hdr.mastering)}")
    if hdr.light is not None:
        params.append(f"{syntax.light}={hdr.light.max_cll},{hdr.light.max_fall}")
    return {syntax.option: ":".join(params)}


def hdr_note(codec: str, hdr: HdrMetadata | None) -> str | None:
    """What an output encoded by ``codec`` says when it cannot be given ``hdr``."""
    if hdr is None or codec in _SYNTAX:
        return None
    return f"{codec} cannot be given the input's HDR10 metadata ({hdr.describe()}); libx264, libx265 and libsvtav1 write it"
