"""Colour description of a video stream, in FFmpeg's numbering (what PyAV exposes).

The matrix and range decide the YUV<->RGB conversion; primaries and transfer are carried through
untouched so that HDR (PQ/HLG, BT.2020) stays tagged correctly in the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["ColorDescription", "ColorMatrix", "ColorRange", "primaries_name", "transfer_name"]


class ColorMatrix(IntEnum):
    """AVColorSpace: the YCbCr matrix coefficients."""

    RGB = 0
    BT709 = 1
    UNSPECIFIED = 2
    FCC = 4
    BT470BG = 5  # BT.601 625-line; same coefficients as SMPTE170M
    SMPTE170M = 6  # BT.601 525-line
    SMPTE240M = 7
    YCGCO = 8
    BT2020_NCL = 9
    BT2020_CL = 10


class ColorRange(IntEnum):
    """AVColorRange."""

    UNSPECIFIED = 0
    LIMITED = 1  # "tv"/"mpeg": Y in [16, 235], C in [16, 240] (8-bit)
    FULL = 2  # "pc"/"jpeg"


_PRIMARIES = {
    1: "bt709",
    2: "unspecified",
    4: "bt470m",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    8: "film",
    9: "bt2020",
    10: "smpte428",
    11: "smpte431",
    12: "smpte432",
    22: "ebu3213",
}
_TRANSFER = {
    1: "bt709",
    2: "unspecified",
    4: "gamma22",
    5: "gamma28",
    6: "smpte170m",
    7: "smpte240m",
    8: "linear",
    9: "log100",
    10: "log316",
    11: "iec61966-2-4",
    12: "bt1361e",
    13: "iec61966-2-1",
    14: "bt2020-10",
    15: "bt2020-12",
    16: "smpte2084",
    17: "smpte428",
    18: "arib-std-b67",
}


def primaries_name(value: int) -> str:
    return _PRIMARIES.get(value, f"unknown({value})")


def transfer_name(value: int) -> str:
    return _TRANSFER.get(value, f"unknown({value})")


def _matrix(value: int) -> ColorMatrix:
    try:
        return ColorMatrix(value)
    except ValueError:
        return ColorMatrix.UNSPECIFIED


def _range(value: int) -> ColorRange:
    try:
        return ColorRange(value)
    except ValueError:
        return ColorRange.UNSPECIFIED


@dataclass(frozen=True, slots=True, kw_only=True)
class ColorDescription:
    """What the stream says about its colour, as tagged (UNSPECIFIED where it says nothing)."""

    matrix: ColorMatrix = ColorMatrix.UNSPECIFIED
    range: ColorRange = ColorRange.UNSPECIFIED
    primaries: int = 2
    transfer: int = 2

    @classmethod
    def from_values(cls, matrix: int, range: int, primaries: int, transfer: int) -> ColorDescription:
        return cls(matrix=_matrix(matrix), range=_range(range), primaries=primaries, transfer=transfer)

    def resolved(self, height: int, *, full_range_format: bool = False) -> ColorDescription:
        """The description with the matrix and range that a conversion must actually use.

        Untagged streams get what players assume: BT.601 up to 576 lines, BT.709 above; limited
        range unless the pixel format is a full-range ("yuvj") one. The output is tagged with the
        resolved values, so a 4x upscale of untagged SD video is not re-guessed as BT.709.
        """
        matrix = self.matrix
        if matrix in (ColorMatrix.UNSPECIFIED,):
            matrix = ColorMatrix.BT709 if height > 576 else ColorMatrix.SMPTE170M
        rng = self.range
        if rng == ColorRange.UNSPECIFIED:
            rng = ColorRange.FULL if full_range_format else ColorRange.LIMITED
        return ColorDescription(matrix=matrix, range=rng, primaries=self.primaries, transfer=self.transfer)

    def describe(self) -> str:
        return (
            f"matrix={self.matrix.name.lower()} range={self.range.name.lower()} "
            f"primaries={primaries_name(self.primaries)} transfer={transfer_name(self.transfer)}"
        )
