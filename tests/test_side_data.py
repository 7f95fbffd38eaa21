"""Metadata inside the video frames that a re-encode loses is named, once, where it first appears."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np

import vsr
from vsr.media.side_data import UncarriedSideData, frame_side_data

CAPTIONS_NOTE = "closed captions (CEA-608/708) inside the video stream, first seen at frame {}, cannot be carried to the output: dropped"

# an ATSC A/53 caption in an H.264 SEI (user data registered by ITU-T T.35: country 0xB5,
# provider 0x0031, "GA94", type 3, one cc_data triple), as broadcast recordings carry them
_CAPTION_SEI = b"\x00\x00\x00\x01\x06\x04\x0e" + bytes.fromhex("b50031474139340341fffc9420ff") + b"\x80"


def _captioned_h264(path: Path, frames: int, first_captioned: int) -> Path:
    """Raw H.264 whose access units from ``first_captioned`` on carry a caption SEI."""
    buffer = io.BytesIO()
    output = av.open(buffer, "w", format="h264")
    stream = output.add_stream("libx264", rate=25, options={"preset": "ultrafast", "bframes": "0"})
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    packets = []
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        packets += stream.encode(frame)
    packets += stream.encode(None)
    output.close()
    data = b""
    for n, packet in enumerate(packets):  # one access unit per packet, in order (no B-frames)
        data += (_CAPTION_SEI if n >= first_captioned else b"") + bytes(packet)
    path.write_bytes(data)
    return path


def test_the_clip_really_carries_captions_from_that_frame(tmp_path: Path) -> None:
    src = _captioned_h264(tmp_path / "cc.264", 6, 2)
    with av.open(str(src)) as c:
        kinds = [{str(s.type) for s in frame_side_data(f)} for f in c.decode(video=0)]
    assert ["Type.A53_CC" in k for k in kinds] == [False, False, True, True, True, True]


def test_captions_are_named_once_at_the_frame_they_start(tmp_path: Path) -> None:
    src = _captioned_h264(tmp_path / "cc.264", 6, 2)
    summary = vsr.upscale(src, tmp_path / "out.mp4", model="bicubic", scale=2, preset="ultrafast")
    assert summary.frames_out == 6
    assert [n for n in summary.notes if "captions" in n] == [CAPTIONS_NOTE.format(2)]


def test_a_clip_without_captions_gets_no_such_note(tmp_path: Path) -> None:
    src = _captioned_h264(tmp_path / "plain.264", 4, 99)
    summary = vsr.upscale(src, tmp_path / "out.mp4", model="bicubic", scale=2, preset="ultrafast")
    assert not [n for n in summary.notes if "captions" in n or "dropped" in n]


def test_each_kind_is_told_once(tmp_path: Path) -> None:
    src = _captioned_h264(tmp_path / "cc.264", 3, 0)
    watcher = UncarriedSideData()
    with av.open(str(src)) as c:
        told = [watcher.check(frame, n) for n, frame in enumerate(c.decode(video=0))]
    assert told == [[CAPTIONS_NOTE.format(0)], [], []]


def test_reading_a_frames_side_data_leaves_no_reference_behind(tmp_path: Path) -> None:
    # PyAV's frame.side_data keeps a container on the frame that refers back to it: a cycle that
    # only the cycle collector frees (136 MB more after 700 frames of 1536x1152 in a run)
    import sys

    from vsr.media.hdr import hdr_of

    src = _captioned_h264(tmp_path / "cc.264", 3, 0)
    with av.open(str(src)) as c:
        frame, other = list(c.decode(video=0))[:2]
    before = sys.getrefcount(frame)
    assert UncarriedSideData().check(frame, 0) and hdr_of(frame) is None
    assert sys.getrefcount(frame) == before  # nothing holds it but this test
    baseline = sys.getrefcount(other)
    assert len(other.side_data) == 1 and sys.getrefcount(other) > baseline  # the property's cycle
