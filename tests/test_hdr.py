"""HDR10 static metadata (mastering display, content light level) reaches the re-encoded video."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import pytest

import vsr
from vsr.media import FileSource, spec_for_input
from vsr.media.encoders import encoder_options
from vsr.media.hdr import ContentLight, HdrMetadata, MasteringDisplay, hdr_encoder_options, hdr_of
from vsr.media.probe import probe

from clips import write_clip

# BT.2020 primaries, D65, 0.005-1000 cd/m² (a common HDR10 grade), in x265's units
MASTER = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"
EXPECTED = HdrMetadata(
    MasteringDisplay(
        red=(Fraction(34000, 50000), Fraction(16000, 50000)),
        green=(Fraction(13250, 50000), Fraction(34500, 50000)),
        blue=(Fraction(7500, 50000), Fraction(3000, 50000)),
        white=(Fraction(15635, 50000), Fraction(16450, 50000)),
        min_luminance=Fraction(50, 10000),
        max_luminance=Fraction(1000),
    ),
    ContentLight(1000, 400),
)


def _hdr10_clip(folder: Path) -> Path:
    return write_clip(
        folder / "hdr10.mp4",
        codec="libx265",
        pix_fmt="yuv420p10le",
        color=(9, 1, 9, 16),  # BT.2020 matrix and primaries, PQ
        frames=6,
        options={"x265-params": f"log-level=error:hdr10=1:master-display={MASTER}:max-cll=1000,400"},
    )


def _first_frame_hdr(path: Path) -> HdrMetadata | None:
    with av.open(str(path)) as c:
        return hdr_of(next(c.decode(video=0)))


def test_the_side_data_is_read_as_ffmpeg_lays_it_out() -> None:
    # AVMasteringDisplayMetadata as FFmpeg's HEVC decoder fills it: primaries in r, g, b order
    raw = struct.pack(
        "<22i", 34000, 50000, 16000, 50000, 13250, 50000, 34500, 50000, 7500, 50000, 3000, 50000,
        15635, 50000, 16450, 50000, 50, 10000, 10000000, 10000, 1, 1,
    )  # fmt: skip
    from vsr.media.hdr import _mastering

    mastering = _mastering(raw)
    assert mastering == EXPECTED.mastering
    assert mastering.x26x() == MASTER  # x26x orders them G, B, R
    assert mastering.svt() == (
        "G(0.26500,0.69000)B(0.15000,0.06000)R(0.68000,0.32000)WP(0.31270,0.32900)L(1000.0000,0.0050)"
    )
    # luminance without primaries is not a mastering display the encoders can take
    assert _mastering(raw[:-8] + struct.pack("<2i", 0, 1)) is None


def test_a_decoded_hdr10_clip_gives_its_metadata(tmp_path: Path) -> None:
    assert _first_frame_hdr(_hdr10_clip(tmp_path)) == EXPECTED


@pytest.mark.parametrize("codec", ["libx264", "libx265", "libsvtav1"])
def test_each_software_encoder_writes_the_inputs_hdr10_metadata(tmp_path: Path, codec: str) -> None:
    src = _hdr10_clip(tmp_path)
    out = tmp_path / f"out-{codec}.mkv"
    summary = vsr.upscale(src, out, model="bicubic", scale=2, preset="ultrafast", codec=codec)
    assert summary.frames_out == 6
    got = _first_frame_hdr(out)
    assert got is not None and got.light == EXPECTED.light
    assert got.mastering is not None and EXPECTED.mastering is not None
    # AV1 stores chromaticity in 1/65536 and luminance in 1/256 (max) and 1/16384 (min)
    tolerance = Fraction(1, 20000) if codec == "libsvtav1" else Fraction(0)
    for name in ("red", "green", "blue", "white"):
        for a, b in zip(getattr(got.mastering, name), getattr(EXPECTED.mastering, name), strict=True):
            assert abs(a - b) <= tolerance, (name, a, b)
    assert abs(got.mastering.max_luminance - 1000) <= tolerance
    assert abs(got.mastering.min_luminance - Fraction(1, 200)) <= Fraction(1, 10000)


def test_the_users_own_encoder_parameters_are_kept_beside_them(tmp_path: Path) -> None:
    with FileSource(_hdr10_clip(tmp_path)) as source:
        spec, _ = spec_for_input(source.info, codec="libx265", options={"x265-params": "aq-mode=3"})
    params = encoder_options(spec)["x265-params"].split(":")
    assert params == [
        "log-level=error", "hdr10=1", f"master-display={MASTER}", "max-cll=1000,400", "aq-mode=3",
    ]  # fmt: skip


def test_sdr_has_none_and_nvenc_has_no_way_in(tmp_path: Path) -> None:
    with FileSource(write_clip(tmp_path / "sdr.mp4")) as source:
        assert source.info.hdr is None
    assert hdr_encoder_options("h264_nvenc", EXPECTED) is None
    assert hdr_encoder_options("hevc_nvenc", EXPECTED) is None


def test_probe_shows_the_hdr10_metadata(tmp_path: Path) -> None:
    lines = probe(_hdr10_clip(tmp_path)).describe()
    assert (
        "hdr10:     mastering display R(0.6800,0.3200) G(0.2650,0.6900) B(0.1500,0.0600) "
        "WP(0.3127,0.3290), 0.005-1000 cd/m²; MaxCLL 1000 MaxFALL 400 cd/m²"
    ) in lines
