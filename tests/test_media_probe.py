"""probe(): every stream listed with its parameters, and readable lines for `vsr probe`."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsr.errors import InputError
from vsr.media import probe

from clips import av_clip, rotated_clip


def test_probe_lists_every_stream(tmp_path: Path) -> None:
    info = probe(av_clip(tmp_path, ".mkv"))
    assert [(s.index, s.type, s.codec) for s in info.streams] == [
        (0, "video", "h264"),
        (1, "audio", "aac"),
        (2, "subtitle", "subrip"),
        (3, "subtitle", "ass"),
        (4, "attachment", "attachment"),
    ]
    assert info.streams[0].details == "160x96 yuv420p 25 fps"
    assert info.streams[1].details == "48000 Hz stereo fltp"
    assert info.streams[4].details == "DejaVuSans.ttf application/x-truetype-font"
    assert info.video.frame_count == 25 and info.size_bytes == (tmp_path / "av.mkv").stat().st_size
    lines = info.describe()
    # The duration is the video track's own (Matroska DURATION tag), not the longer audio's.
    assert lines[1] == "video:     h264 160x96 yuv420p (8-bit), 25 fps, ~25 frames, 1.000 s"
    assert "stream:    #2 subtitle   subrip" in lines


def test_probe_describes_a_real_clip(shared_data: Path) -> None:
    info = probe(shared_data / "video" / "bigbuckbunny.mp4")
    lines = info.describe()
    assert lines[1] == "video:     h264 1280x720 yuv420p (8-bit), 25 fps, 132 frames, 5.280 s"
    assert lines[2] == "timing:    time base 1/12800, first pts 0 (0.000 s)"
    assert info.streams[1].details == "48000 Hz 5.1 fltp" and info.streams[1].default


def test_probe_reports_geometry_and_synthesized_timing(shared_data: Path, tmp_path: Path) -> None:
    assert "geometry:  rotation 90 degrees" in probe(rotated_clip(tmp_path, 90)).describe()
    lines = probe(shared_data / "video" / "foreman_cif.264").describe()
    assert "timing:    time base 1/25, first pts 0 (0.000 s), timestamps synthesized" in lines
    assert "note:      no timestamps in input; the stream's nominal 25 fps" in lines
    lines = probe(shared_data / "video" / "interlaced_tff_testpattern.mkv").describe()
    assert "geometry:  sample aspect ratio 32/27, interlaced (will be deinterlaced)" in lines
    assert "stream:    #1 audio      ac3 48000 Hz stereo fltp [eng] 192 kb/s" in lines


def test_probe_errors_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^input not found: "):
        probe(tmp_path / "nothing.mkv")
