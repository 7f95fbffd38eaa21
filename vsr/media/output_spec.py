"""`VideoOutputSpec`: everything the Sink needs to know about the video it will encode."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction

from vsr.errors import ConfigError
from vsr.media.chunked_encode import check_encoder_instances
from vsr.media.color import ColorDescription, ColorMatrix, ColorRange
from vsr.media.encoders import choose_output_pix_fmt, encoder_options
from vsr.media.formats import format_traits
from vsr.media.frame import PIXEL_FORMATS, pixel_layout
from vsr.media.hdr import HdrMetadata
from vsr.media.info import VideoInfo
from vsr.media.tags import FileTags

__all__ = ["VideoOutputSpec", "spec_for_input"]


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoOutputSpec:
    """The encoded video: size, pixel format, time base and colour of the frames it receives.

    ``color`` is the matrix and range the frames were converted with (and so the tags the output
    must carry), plus the primaries and transfer to tag. ``time_base`` is the frames' own: pts
    pass to the encoder unchanged. ``frame_rate`` only informs rate control. ``crf``/``preset``
    None mean the encoder's defaults (see `vsr.media.encoders.ENCODERS`). ``encoder_instances``
    above 1 encodes a file output in GOP-aligned chunks on that many encoders at once
    (`vsr.media.chunked_encode`; libx264/libx265 only), with a keyframe every chunk.
    """

    width: int
    height: int
    pix_fmt: str
    time_base: Fraction
    frame_rate: Fraction | None = None
    color: ColorDescription = field(default_factory=ColorDescription)
    rotation: float = 0.0
    sample_aspect_ratio: Fraction | None = None
    codec: str = "libx264"
    crf: int | None = None
    preset: str | None = None
    threads: int = 0
    options: Mapping[str, str] = field(default_factory=dict)
    encoder_instances: int = 1
    tags: FileTags = field(default_factory=FileTags)  # container metadata, chapters, video tags
    hdr: HdrMetadata | None = None  # HDR10 static metadata, passed to the encoder

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ConfigError(f"output size must be positive, got {self.width}x{self.height}")
        if self.pix_fmt not in PIXEL_FORMATS:
            raise ConfigError(
                f"output pixel format {self.pix_fmt!r} is not one the pipeline produces; "
                f"use one of {', '.join(PIXEL_FORMATS)}"
            )
        if self.time_base <= 0:
            raise ConfigError(f"output time base must be positive, got {self.time_base}")
        encoder_options(self)  # validates codec, crf range and preset now, not at the first frame
        check_encoder_instances(self.encoder_instances, self.codec)

    @property
    def encoder_pix_fmt(self) -> str:
        """What the encoder is opened with: "yuvj" formats go in as the plain ones."""
        return self.pix_fmt.replace("yuvj", "yuv", 1) if self.pix_fmt.startswith("yuvj") else self.pix_fmt

    @property
    def tagged_color(self) -> ColorDescription:
        """The colour tags to write: a "yuvj" format means full range whatever the tag says."""
        if pixel_layout(self.pix_fmt).full_range and self.color.range != ColorRange.FULL:
            return replace(self.color, range=ColorRange.FULL)
        return self.color


def spec_for_input(
    info: VideoInfo,
    *,
    width: int | None = None,
    height: int | None = None,
    codec: str = "libx264",
    pix_fmt: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
    threads: int = 0,
    options: Mapping[str, str] | None = None,
    encoder_instances: int = 1,
) -> tuple[VideoOutputSpec, str | None]:
    """The spec that keeps everything of ``info`` but the size: timing, colour, HDR, rotation, SAR, tags.

    Returns the spec and the pixel-format note of `choose_output_pix_fmt` (None if nothing is
    lost). Untagged colour is resolved the way players guess it and then tagged explicitly.
    """
    out_fmt, note = choose_output_pix_fmt(codec, info.pix_fmt, pix_fmt)
    color = info.color.resolved(info.height, full_range_format=pixel_layout(info.pix_fmt).full_range)
    if format_traits(out_fmt).model == "rgb":
        color = replace(color, matrix=ColorMatrix.RGB)
    spec = VideoOutputSpec(
        width=width or info.width,
        height=height or info.height,
        pix_fmt=out_fmt,
        time_base=info.time_base,
        frame_rate=info.average_rate,
        color=color,
        rotation=info.rotation,
        sample_aspect_ratio=info.sample_aspect_ratio,
        codec=codec,
        crf=crf,
        preset=preset,
        threads=threads,
        options=dict(options or {}),
        encoder_instances=encoder_instances,
        tags=info.tags,
        hdr=info.hdr,
    )
    return spec, note
