"""The video encoders vsr drives, what each accepts, and how crf/preset map onto their options."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import av

from vsr.errors import ConfigError
from vsr.media.formats import loses_information, nearest_format, non_j_format
from vsr.media.frame import PIXEL_FORMATS
from vsr.media.hdr import hdr_encoder_options

if TYPE_CHECKING:
    import av.video.codeccontext

    from vsr.media.output_spec import VideoOutputSpec

__all__ = [
    "ENCODERS",
    "EncoderProfile",
    "check_encoder_settings",
    "choose_output_pix_fmt",
    "configure_encoder",
    "encoder_options",
    "encoder_pix_fmts",
    "encoder_profile",
]

_X26X_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
)  # fmt: skip
# One --preset vocabulary for every encoder: the x264 names map onto the others' scales.
_SVT_FROM_X264 = dict(zip(_X26X_PRESETS, ("12", "11", "10", "9", "8", "6", "5", "4", "2", "1"), strict=True))
_NVENC_FROM_X264 = dict(
    zip(_X26X_PRESETS, ("p1", "p2", "p3", "p3", "p4", "p5", "p6", "p7", "p7", "p7"), strict=True)
)


@dataclass(frozen=True, slots=True)
class EncoderProfile:
    name: str
    quality_option: str  # the FFmpeg option crf maps to
    quality_range: tuple[int, int]
    default_quality: int
    presets: tuple[str, ...]
    default_preset: str
    preset_aliases: dict[str, str]
    hardware: bool = False


ENCODERS: dict[str, EncoderProfile] = {
    "libx264": EncoderProfile("libx264", "crf", (0, 51), 18, _X26X_PRESETS, "medium", {}),
    "libx265": EncoderProfile("libx265", "crf", (0, 51), 20, _X26X_PRESETS, "medium", {}),
    "libsvtav1": EncoderProfile(
        "libsvtav1", "crf", (1, 63), 30, tuple(str(n) for n in range(-1, 14)), "8", _SVT_FROM_X264
    ),
    "h264_nvenc": EncoderProfile(
        "h264_nvenc", "cq", (0, 51), 21, tuple(f"p{n}" for n in range(1, 8)), "p5", _NVENC_FROM_X264, True
    ),
    "hevc_nvenc": EncoderProfile(
        "hevc_nvenc", "cq", (0, 51), 24, tuple(f"p{n}" for n in range(1, 8)), "p5", _NVENC_FROM_X264, True
    ),
}

# The planar formats the pipeline prefers over their semi-planar twins when an encoder takes both.
_PLANAR_TWIN = {"nv12": "yuv420p", "p010le": "yuv420p10le"}


def encoder_profile(codec: str) -> EncoderProfile:
    try:
        return ENCODERS[codec]
    except KeyError:
        raise ConfigError(f"unknown encoder {codec!r}; vsr encodes with {', '.join(ENCODERS)}") from None


@cache
def encoder_pix_fmts(codec: str) -> frozenset[str]:
    """The pixel formats ``codec`` accepts that the pipeline can also produce."""
    encoder_profile(codec)
    try:
        formats = av.Codec(codec, "w").video_formats or ()
    except av.codec.codec.UnknownCodecError:
        raise ConfigError(f"encoder {codec} is not available in this FFmpeg build") from None
    return frozenset(f.name for f in formats) & frozenset(PIXEL_FORMATS)


def choose_output_pix_fmt(codec: str, input_pix_fmt: str, requested: str | None) -> tuple[str, str | None]:
    """The pixel format to encode, and a note when it loses something of the input's.

    The input's own format is kept where the encoder takes it (10-bit stays 10-bit); "yuvj"
    formats become the plain ones (the full range goes into the colour tags); nv12/p010le become
    their planar twins. Otherwise the nearest format the encoder takes, with a note.
    """
    supported = encoder_pix_fmts(codec)
    if requested is not None:
        if requested not in PIXEL_FORMATS:
            raise ConfigError(
                f"pixel format {requested!r} is not one vsr can produce; choose one of "
                f"{', '.join(sorted(supported))}"
            )
        wanted = non_j_format(requested)
        if wanted not in supported:
            raise ConfigError(f"{codec} cannot encode {requested}; it takes {', '.join(sorted(supported))}")
        return wanted, None
    plain = non_j_format(input_pix_fmt)
    for candidate in (_PLANAR_TWIN.get(plain), plain):
        if candidate in supported:
            return candidate, None
    chosen = nearest_format(plain, supported)
    if not loses_information(plain, chosen):
        return chosen, None  # a layout change only (yuv420p10le -> p010le for NVENC)
    return chosen, f"{codec} cannot encode {input_pix_fmt}; writing {chosen}"


def _preset(profile: EncoderProfile, preset: str | None) -> str:
    if preset is None:
        return profile.default_preset
    value = profile.preset_aliases.get(preset, preset)
    if value not in profile.presets:
        names = ", ".join(profile.presets + tuple(profile.preset_aliases))
        raise ConfigError(f"{profile.name} has no preset {preset!r}; use one of {names}")
    return value


# The encoders' own parameter lists ("key=value:key=value"), which vsr and the user both add to.
_PARAM_LISTS = frozenset({"x264-params", "x265-params", "svtav1-params"})


def check_encoder_settings(
    codec: str, crf: int | None, preset: str | None
) -> tuple[EncoderProfile, int, str]:
    """The encoder's profile, quality and preset; a `ConfigError` for a codec, crf or preset it lacks."""
    profile = encoder_profile(codec)
    quality = profile.default_quality if crf is None else crf
    low, high = profile.quality_range
    if not low <= quality <= high:
        raise ConfigError(f"crf {quality} is out of range for {profile.name} ({low}..{high})")
    return profile, quality, _preset(profile, preset)


def encoder_options(spec: VideoOutputSpec) -> dict[str, str]:
    """FFmpeg options for the spec's encoder: quality, preset, HDR10 metadata, then the user's own."""
    profile, quality, preset = check_encoder_settings(spec.codec, spec.crf, spec.preset)
    options = {"preset": preset}
    if profile.name == "libx264" and quality == 0:
        options["qp"] = "0"  # crf 0 is lossless only at 8 bits; qp 0 is lossless at any depth
    elif profile.name == "libx265":
        # x265 prints its banner and statistics to stderr itself, past FFmpeg's logging.
        params = ["log-level=error"] + (["lossless=1"] if quality == 0 else [])
        options["crf"] = str(quality)
        options["x265-params"] = ":".join(params)
    elif profile.hardware:
        options.update(rc="vbr", cq=str(quality), b="0")
    else:
        options[profile.quality_option] = str(quality)
    hdr = hdr_encoder_options(profile.name, spec.hdr) if spec.hdr is not None else None
    for key, value in [*(hdr or {}).items(), *spec.options.items()]:
        if key in _PARAM_LISTS and key in options:  # "a=1:b=2" lists: the later ones win
            value = f"{options[key]}:{value}"
        options[key] = str(value)
    return options


def configure_encoder(
    context: av.video.codeccontext.VideoCodecContext, spec: VideoOutputSpec, *, threads: int
) -> None:
    """Size, pixel format, time base and colour tags of an unopened encoder for ``spec``.

    The one place both the output stream's encoder and the chunked encoder's instances are set up,
    so that instances and stream agree (their headers are compared).
    """
    context.width, context.height = spec.width, spec.height
    context.pix_fmt = spec.encoder_pix_fmt
    context.thread_count = threads
    # The encoder works in the frames' own time base, so pts pass through unchanged (VFR
    # stays VFR, a start offset stays); the muxer rescales to its own unit if it has one.
    context.time_base = spec.time_base
    color = spec.tagged_color
    context.colorspace = int(color.matrix)
    context.color_range = int(color.range)
    context.color_primaries = color.primaries
    context.color_trc = color.transfer
    if spec.sample_aspect_ratio:
        context.sample_aspect_ratio = spec.sample_aspect_ratio
