"""Output pixel-format choice and encoder option mapping."""

from __future__ import annotations

import inspect
from fractions import Fraction
from pathlib import Path

import pytest

import vsr.media
from vsr.errors import ConfigError
from vsr.media import VideoOutputSpec, choose_output_pix_fmt, container_for, encoder_options, partial_path
from vsr.media.formats import format_traits, nearest_format


@pytest.mark.parametrize(
    ("codec", "source", "expected"),
    [
        ("libx264", "yuv420p", ("yuv420p", None)),
        ("libx264", "yuv420p10le", ("yuv420p10le", None)),
        ("libx264", "yuvj420p", ("yuv420p", None)),
        ("libx264", "nv12", ("yuv420p", None)),
        ("libx264", "p010le", ("yuv420p10le", None)),
        ("libx264", "yuv420p12le", ("yuv420p10le", "libx264 cannot encode yuv420p12le; writing yuv420p10le")),
        ("libx264", "rgb24", ("yuv444p", "libx264 cannot encode rgb24; writing yuv444p")),
        ("libx265", "yuv420p12le", ("yuv420p12le", None)),
        ("libx265", "gbrp10le", ("gbrp10le", None)),
        ("libsvtav1", "yuv444p", ("yuv420p", "libsvtav1 cannot encode yuv444p; writing yuv420p")),
        (
            "libsvtav1",
            "yuv422p10le",
            ("yuv420p10le", "libsvtav1 cannot encode yuv422p10le; writing yuv420p10le"),
        ),
        ("libsvtav1", "gray", ("yuv420p", "libsvtav1 cannot encode gray; writing yuv420p")),
        ("hevc_nvenc", "yuv420p10le", ("p010le", None)),
        ("hevc_nvenc", "yuvj444p", ("yuv444p", None)),
    ],
)
def test_choose_output_pix_fmt(codec: str, source: str, expected: tuple[str, str | None]) -> None:
    assert choose_output_pix_fmt(codec, source, None) == expected


def test_requested_pixel_formats_are_checked() -> None:
    assert choose_output_pix_fmt("libx264", "yuv420p10le", "yuv420p") == ("yuv420p", None)
    assert choose_output_pix_fmt("libx264", "yuv420p", "yuvj444p") == ("yuv444p", None)
    with pytest.raises(
        ConfigError, match=r"^libsvtav1 cannot encode yuv444p; it takes yuv420p, yuv420p10le$"
    ):
        choose_output_pix_fmt("libsvtav1", "yuv420p", "yuv444p")
    with pytest.raises(
        ConfigError, match=r"^pixel format 'yuv411p' is not one vsr can produce; choose one of "
    ):
        choose_output_pix_fmt("libx264", "yuv420p", "yuv411p")
    with pytest.raises(ConfigError, match=r"^unknown encoder 'vp9'"):
        choose_output_pix_fmt("vp9", "yuv420p", None)


def test_nearest_format_reads_ffmpeg_descriptors() -> None:
    assert format_traits("p010le").bits == 10 and format_traits("p010le").semiplanar
    assert (format_traits("yuv410p").chroma_w, format_traits("yuv410p").chroma_h) == (2, 2)
    assert nearest_format("yuva420p", vsr.media.PIXEL_FORMATS) == "yuv420p"
    assert nearest_format("yuv440p", vsr.media.PIXEL_FORMATS) == "yuv444p"
    assert nearest_format("rgba", vsr.media.PIXEL_FORMATS) == "rgb24"
    # RGB stays RGB (its tags describe no YUV matrix), at the highest precision there is.
    assert nearest_format("rgb48le", vsr.media.PIXEL_FORMATS) == "gbrp10le"
    assert nearest_format("rgb24", ["gray", "yuv420p", "yuv444p"]) == "yuv444p"


def _spec(codec: str, **kw: object) -> VideoOutputSpec:
    return VideoOutputSpec(
        width=64, height=64, pix_fmt="yuv420p", time_base=Fraction(1, 25), codec=codec, **kw
    )  # type: ignore[arg-type]


def test_encoder_options_per_encoder() -> None:
    assert encoder_options(_spec("libx264")) == {"preset": "medium", "crf": "18"}
    assert encoder_options(_spec("libx264", crf=0, preset="ultrafast")) == {"preset": "ultrafast", "qp": "0"}
    assert encoder_options(_spec("libx265", options={"x265-params": "aq-mode=3"})) == {
        "preset": "medium",
        "crf": "20",
        "x265-params": "log-level=error:aq-mode=3",
    }
    assert encoder_options(_spec("libsvtav1", preset="fast")) == {"preset": "8", "crf": "30"}
    assert encoder_options(_spec("hevc_nvenc", preset="slow", crf=19)) == {
        "preset": "p6",
        "rc": "vbr",
        "cq": "19",
        "b": "0",
    }
    assert encoder_options(_spec("h264_nvenc"))["preset"] == "p5"


def test_containers_and_partial_names() -> None:
    assert container_for("out.MKV").format == "matroska"
    assert container_for("ts").format == "mpegts"
    assert (
        dict(container_for(".mp4").options)["movflags"]
        == "frag_keyframe+empty_moov+default_base_moof+delay_moov"
    )
    assert partial_path(Path("/x/out.4k.mp4")) == Path("/x/out.4k.partial.mp4")


def test_public_names_are_exported() -> None:
    public = {
        name
        for name, value in vars(vsr.media).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(vsr.media.__all__)
    assert vsr.media.__all__ == sorted(
        vsr.media.__all__, key=lambda n: (not n.isupper(), not n[0].isupper(), n)
    )
