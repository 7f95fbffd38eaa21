"""Every shared real clip through the whole pipeline: all frames, the same times, audio bytes, colour."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

import vsr

# (file, frames, output extension); the long ones are marked slow
CLIPS = [
    ("sample_1080x720_aac.mp4", 30, ".mp4"),
    ("vfr_slow_motion.mp4", 7, ".mp4"),
    ("foreman_cif.264", 300, ".mp4"),
    ("hdr10_av1_10bit.mp4", 127, ".mp4"),
    ("interlaced_tff_testpattern.mkv", 300, ".mkv"),
    ("bigbuckbunny.mp4", 132, ".mp4"),
    pytest.param("bbb_mpeg2_vfr.ts", 58, ".mkv", marks=pytest.mark.slow),
    pytest.param("vtest.avi", 795, ".mp4", marks=pytest.mark.slow),
]


def _times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        return [Fraction(f.pts) * f.time_base for f in c.decode(video=0) if f.pts is not None]


def _audio(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def _tags(path: Path) -> tuple[int, int, int, int, str]:
    with av.open(str(path)) as c:
        ctx = c.streams.video[0].codec_context
        return ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc, ctx.pix_fmt or ""


@pytest.mark.parametrize(("name", "frames", "ext"), CLIPS)
def test_shared_clip_keeps_every_frame_time_audio_packet_and_colour(
    shared_data: Path, tmp_path: Path, name: str, frames: int, ext: str
) -> None:
    src = shared_data / "video" / name
    out = tmp_path / f"out{ext}"
    summary = vsr.upscale(src, out, model="bicubic", scale=2, preset="ultrafast")
    assert summary.frames_in == summary.frames_out == frames
    times = _times(out)
    assert len(times) == frames
    source_times = _times(src)
    if source_times:
        tick = Fraction(1, 1000) if ext == ".mkv" else None  # Matroska counts milliseconds
        expected = [round(t / tick) * tick for t in source_times] if tick else source_times
        assert times == expected
    else:  # no timestamps in the input (raw H.264): exact ones from its 25 fps
        assert times == [Fraction(i, 25) for i in range(frames)]
    assert _audio(out) == _audio(src)
    matrix, rng, primaries, transfer, pix_fmt = _tags(src)
    out_tags = _tags(out)
    # decoders report full-range 4:2:0 as "yuvj420p" whichever way it was encoded
    assert out_tags[2:4] == (primaries, transfer)
    assert out_tags[4].replace("yuvj", "yuv") == pix_fmt.replace("yuvj", "yuv")
    if matrix != 2:  # tagged input keeps its matrix; untagged input is tagged with what was used
        assert out_tags[0] == matrix
    assert out_tags[1] == (rng if rng else 1) or (pix_fmt.startswith("yuvj") and out_tags[1] == 2)


def _end(path: Path) -> Fraction:
    """Where the video ends: the latest frame's pts plus its packet's duration, in seconds."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        ends = [(p.pts + p.duration) * p.time_base for p in c.demux(stream) if p.size and p.pts is not None]
    return max(ends)


@pytest.mark.parametrize(("name", "end"), [("vfr_slow_motion.mp4", None), ("foreman_cif.264", Fraction(12))])
def test_the_last_frame_keeps_its_duration(
    shared_data: Path, tmp_path: Path, name: str, end: Fraction | None
) -> None:
    # the encoders pass no frame duration on, so the muxer used to guess the last frame's from the
    # frames before it: the VFR clip's 33 ms last frame lasted 75 ms in Matroska
    src = shared_data / "video" / name
    out = tmp_path / "out.mkv"
    vsr.upscale(src, out, model="bicubic", scale=2, preset="ultrafast")
    expected = _end(src) if end is None else end
    assert abs(float(_end(out) - expected)) <= 0.001, (float(_end(out)), float(expected))
