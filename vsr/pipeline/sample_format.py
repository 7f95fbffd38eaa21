"""The colour maths' view (`vsr.ops.color.SampleFormat`) of a decoded or encoded pixel format."""

from __future__ import annotations

from vsr.media.color import ColorDescription, ColorRange
from vsr.media.frame import pixel_layout
from vsr.ops.color import SampleFormat

__all__ = ["sample_format"]

# formats whose significant bits sit at the top of 16-bit words
_MSB_ALIGNED_BITS = {"p010le": 10}


def sample_format(pix_fmt: str, color: ColorDescription) -> SampleFormat:
    """The colour maths' view of a pixel format tagged with a resolved colour description."""
    layout = pixel_layout(pix_fmt)
    family = "bgr" if pix_fmt == "bgr24" else layout.family
    return SampleFormat(
        family=family,  # type: ignore[arg-type]
        bits=_MSB_ALIGNED_BITS.get(pix_fmt, layout.bits),
        chroma_w=layout.chroma_w,
        chroma_h=layout.chroma_h,
        matrix=int(color.matrix),
        full_range=color.range == ColorRange.FULL,
        msb_aligned=pix_fmt in _MSB_ALIGNED_BITS,
    )
