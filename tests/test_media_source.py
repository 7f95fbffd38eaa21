"""FileSource: frame counts, exact timestamps, planes, deinterlacing, and its one-line errors."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vsr.errors import ConfigError, InputError
from vsr.media import ColorMatrix, ColorRange, FileSource, Frame
from vsr.media.timestamps import PtsClock

from clips import moving_planes, odd_size_clip, offset_clip, rotated_clip, ten_bit_clip, write_clip


def _frames(source: FileSource) -> list[Frame]:
    return [item for item in source.items() if isinstance(item, Frame)]


def _pts_seconds(frames: list[Frame]) -> list[Fraction]:
    return [Fraction(f.pts) * f.time_base for f in frames]


# -- real clips -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "count", "first_pts", "time_base"),
    [
        ("bigbuckbunny.mp4", 132, 0, Fraction(1, 12800)),
        ("sample_1080x720_aac.mp4", 30, 0, Fraction(1, 30000)),
        ("vfr_slow_motion.mp4", 7, 0, Fraction(1, 90000)),
        ("bbb_mpeg2_vfr.ts", 58, 137250, Fraction(1, 90000)),
        ("hdr10_av1_10bit.mp4", 127, 0, Fraction(1, 30000)),
    ],
)
def test_real_clips_decode_every_frame_with_their_own_timestamps(
    shared_data: Path, name: str, count: int, first_pts: int, time_base: Fraction
) -> None:
    with FileSource(shared_data / "video" / name) as source:
        frames = _frames(source)
        info = source.info
    assert len(frames) == count
    assert [f.index for f in frames] == list(range(count))
    assert frames[0].pts == first_pts == info.start_pts
    assert info.time_base == time_base and all(f.time_base == time_base for f in frames)
    assert all(b.pts > a.pts for a, b in itertools.pairwise(frames))
    assert source.pts_repairs == 0


def test_mpeg2_ts_keeps_its_irregular_intervals(shared_data: Path) -> None:
    with FileSource(shared_data / "video" / "bbb_mpeg2_vfr.ts") as source:
        pts = [f.pts for f in _frames(source)]
        assert [p.type for p in source.passthrough] == ["audio"]
    assert {b - a for a, b in itertools.pairwise(pts)} == {3750, 11250}


def test_raw_h264_gets_synthesized_exact_timestamps(shared_data: Path) -> None:
    with FileSource(shared_data / "video" / "foreman_cif.264") as source:
        frames = _frames(source)
        info = source.info
    assert [f.pts for f in frames] == list(range(300))
    assert info.time_base == Fraction(1, 25) and info.timestamps_synthesized
    assert "no timestamps in input; the stream's nominal 25 fps" in info.notes


def test_full_range_and_hdr_colour_tags_are_read(shared_data: Path) -> None:
    with FileSource(shared_data / "video" / "vfr_slow_motion.mp4") as source:
        assert source.info.pix_fmt == "yuvj420p"
        assert source.info.color.range == ColorRange.FULL
        assert (source.info.color.matrix, source.info.color.primaries, source.info.color.transfer) == (
            ColorMatrix.SMPTE170M, 5, 15,
        )  # fmt: skip
    with FileSource(shared_data / "video" / "hdr10_av1_10bit.mp4") as source:
        info = source.info
        frame = next(i for i in source.items() if isinstance(i, Frame))
    assert (info.pix_fmt, info.bits, info.codec) == ("yuv420p10le", 10, "av1")
    assert (info.color.matrix, info.color.range, info.color.primaries, info.color.transfer) == (
        ColorMatrix.BT2020_NCL, ColorRange.LIMITED, 9, 16,
    )  # fmt: skip
    assert frame.planes[0].dtype == np.uint16 and frame.planes[0].shape == (1280, 720)
    assert int(frame.planes[0].max()) <= 1023 and int(frame.planes[0].max()) > 255


def test_interlaced_input_is_deinterlaced_frame_for_frame(shared_data: Path) -> None:
    path = shared_data / "video" / "interlaced_tff_testpattern.mkv"
    with FileSource(path, deinterlace="off") as source:
        fields = _frames(source)
        assert source.info.interlaced and not source.info.deinterlaced
        assert any("deinterlace=off" in n for n in source.notes)
        raw = [f.planes[0].copy() for f in fields[:3]]
    with FileSource(path) as source:
        frames = _frames(source)
        info = source.info
    assert info.interlaced and info.deinterlaced
    assert info.frame_count == 300 and info.frame_count_estimated
    assert info.sample_aspect_ratio == Fraction(32, 27)
    assert len(frames) == len(fields) == 300
    assert [f.pts for f in frames] == [f.pts for f in fields]
    assert [f.key_frame for f in frames] == [f.key_frame for f in fields]
    # bwdif rebuilt the lines, so the pictures differ from the woven fields.
    assert any(not np.array_equal(r, f.planes[0]) for r, f in zip(raw, frames, strict=False))


def test_deinterlace_on_applies_to_progressive_input(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "p.mkv", time_base=Fraction(1, 1000), pts=[40 * i for i in range(6)])
    with FileSource(path, deinterlace="on") as source:
        frames = _frames(source)
        assert "deinterlacing every frame with bwdif (deinterlace=on)" in source.notes
    assert [f.pts for f in frames] == [40 * i for i in range(6)]


# -- synthetic clips ------------------------------------------------------------------------------


def test_planes_are_views_without_padding_matching_pyav(tmp_path: Path) -> None:
    path = odd_size_clip(tmp_path)
    with av.open(str(path)) as container:
        reference = [f.to_ndarray() for f in container.decode(video=0)]
    with FileSource(path) as source:
        frames = _frames(source)
    assert len(frames) == len(reference) == 6
    for frame, ref in zip(frames, reference, strict=True):
        assert frame.pix_fmt == "yuv444p" and (frame.width, frame.height) == (853, 481)
        assert [p.shape for p in frame.planes] == [(481, 853)] * 3
        assert not frame.planes[0].flags.writeable
        np.testing.assert_array_equal(np.stack(frame.planes), ref)


def test_ten_bit_and_rotation_and_offset_are_reported(tmp_path: Path) -> None:
    with FileSource(ten_bit_clip(tmp_path)) as source:
        assert (source.info.pix_fmt, source.info.bits) == ("yuv420p10le", 10)
        frame = _frames(source)[0]
    expected = moving_planes("yuv420p10le", 160, 96, 0)
    # Lossy, but close: the decoded luma is the written gradient to within a few code values.
    assert abs(float(frame.planes[0].astype(np.int32).mean()) - float(expected[0].mean())) < 8
    with FileSource(rotated_clip(tmp_path, 90)) as source:
        assert source.info.rotation == 90
    with FileSource(offset_clip(tmp_path)) as source:
        assert source.info.start_pts == 137250 and source.info.start_time == pytest.approx(1.525)


def test_pixel_formats_outside_the_pipeline_set_are_converted_once(tmp_path: Path) -> None:
    path = tmp_path / "yuv410.mkv"
    output = av.open(str(path), "w")
    stream = output.add_stream("ffv1", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv410p"
    for i in range(3):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), "rgb24").reformat(
            format="yuv410p"
        )
        frame.pts = i
        output.mux(stream.encode(frame))
    output.mux(stream.encode(None))
    output.close()
    with FileSource(path) as source:
        frames = _frames(source)
        info = source.info
    assert (info.decoded_pix_fmt, info.pix_fmt) == ("yuv410p", "yuv420p")
    assert "decoded pixel format yuv410p is converted to yuv420p" in info.notes
    assert [f.planes[1].shape for f in frames] == [(24, 32)] * 3


def test_repeated_timestamps_are_repaired_and_counted(tmp_path: Path) -> None:
    # Matroska accepts equal timestamps, so a broken capture can be rebuilt from good packets.
    good = write_clip(tmp_path / "good.mkv", time_base=Fraction(1, 1000), pts=[40 * i for i in range(6)])
    broken = tmp_path / "broken.mkv"
    with av.open(str(good)) as src, av.open(str(broken), "w") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet, pts in zip(src.demux(video=0), [0, 40, 40, 120, 160, 200], strict=False):
            packet.pts = packet.dts = pts
            packet.stream = out
            dst.mux(packet)
    with FileSource(broken) as source:
        pts = [f.pts for f in _frames(source)]
        assert source.pts_repairs == 1
        assert "repaired 1 timestamps that were missing, repeated or went backwards" in source.notes
    assert pts == [0, 40, 41, 120, 160, 200]


def test_pts_clock_repairs_by_the_smallest_step() -> None:
    clock = PtsClock(synthesize=False)
    assert [clock.next(p) for p in [0, 10, 10, 5, None, 30]] == [0, 10, 11, 12, 13, 30]
    assert clock.repairs == 3
    synthetic = PtsClock(synthesize=True)
    assert [synthetic.next(p) for p in [None, 7, None]] == [0, 1, 2]


def test_data_streams_are_skipped_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "klv.ts"
    with av.open(str(path), "w") as output:
        video = output.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        video.width, video.height = 64, 48
        data = output.add_data_stream()
        for i in range(3):
            frame = av.VideoFrame(64, 48, "yuv420p")
            frame.pts = i
            output.mux(video.encode(frame))
            packet = av.Packet(b"\x06\x0e\x2b\x34" + bytes(12))
            packet.stream, packet.time_base, packet.pts, packet.dts = data, Fraction(1, 25), i, i
            output.mux(packet)
        output.mux(video.encode(None))
    with FileSource(path) as source:
        assert source.passthrough == ()
        assert source.info.notes == (
            "data stream #1 (unknown codec) is not copied: vsr copies audio, subtitle and attachment streams",
        )
        assert len(_frames(source)) == 3


def test_items_demux_once(tmp_path: Path) -> None:
    with FileSource(write_clip(tmp_path / "a.mp4", frames=3)) as source:
        assert len(_frames(source)) == 3
        with pytest.raises(RuntimeError, match="only once"):
            next(source.items())


# -- errors and damaged files ---------------------------------------------------------------------


def test_path_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^input not found: .*missing\.mp4$"):
        FileSource(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match=r"^input is a folder, not a video file: "):
        FileSource(tmp_path)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match=r"^input is empty \(0 bytes\): "):
        FileSource(tmp_path / "empty.mp4")
    (tmp_path / "notes.mkv").write_text("these are my notes\n" * 20)
    with pytest.raises(
        InputError, match=r"^input is not a media file FFmpeg can read: .*notes\.mkv \(Invalid data"
    ):
        FileSource(tmp_path / "notes.mkv")
    with pytest.raises(ConfigError, match="deinterlace must be auto, on or off, got 'yes'"):
        FileSource(tmp_path / "notes.mkv", deinterlace="yes")  # type: ignore[arg-type]


def test_no_video_stream_lists_the_streams(tmp_path: Path) -> None:
    path = tmp_path / "audio.m4a"
    with av.open(str(path), "w", format="mp4") as output:
        stream = output.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = 48000, 0
        output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    with pytest.raises(
        InputError, match=r"^input has no video stream: .*audio\.m4a \(streams: #0 audio aac\)$"
    ):
        FileSource(path)


def test_codec_without_decoder_is_refused(tmp_path: Path) -> None:
    # EVC has a codec id and an MP4 mapping but no decoder in this FFmpeg build.
    path = tmp_path / "evc.mp4"
    with av.open(str(path), "w") as output:
        stream = output.add_mux_stream("evc", width=64, height=48)
        for i in range(2):
            packet = av.Packet(b"\x00\x00\x00\x01\x10" * 4)
            packet.stream, packet.time_base, packet.pts, packet.dts = stream, Fraction(1, 25), i, i
            output.mux(packet)
    with pytest.raises(
        InputError, match=r"^this FFmpeg build has no decoder for the video of .*evc\.mp4 \(stream #0"
    ):
        FileSource(path)


def _cut(source: Path, target: Path, fraction: float) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def test_mp4_cut_before_its_index_is_an_input_error(shared_data: Path, tmp_path: Path) -> None:
    # bigbuckbunny.mp4 has its moov at the end: without it nothing can be located.
    cut = _cut(shared_data / "video" / "bigbuckbunny.mp4", tmp_path / "cut.mp4", 0.5)
    with pytest.raises(
        InputError, match=r"^input is an MP4/MOV file FFmpeg cannot open, most likely truncated"
    ):
        FileSource(cut)


def test_mp4_with_index_first_keeps_all_complete_frames(tmp_path: Path) -> None:
    full = write_clip(
        tmp_path / "long.mp4", frames=60, width=320, height=240, container_options={"movflags": "faststart"}
    )
    cut = _cut(full, tmp_path / "cut.mp4", 0.5)
    with av.open(str(cut)) as container:
        complete = sum(1 for p in container.demux(video=0) if p.size and not p.is_corrupt)
    with FileSource(cut) as source:
        frames = _frames(source)
        notes = source.notes
    # Every packet that is whole decodes; only the one cut short by the end of the file is lost.
    assert 20 < len(frames) == complete < 60
    assert [f.pts for f in frames] == [512 * i for i in range(len(frames))]
    assert "the last video packet is cut short (truncated file) and was dropped" in notes
    assert f"input ended after {len(frames)} of 60 frames; it is probably truncated" in notes


def test_truncated_matroska_and_ts_end_with_a_note_or_quietly(shared_data: Path, tmp_path: Path) -> None:
    cut = _cut(shared_data / "video" / "interlaced_tff_testpattern.mkv", tmp_path / "cut.mkv", 0.5)
    with FileSource(cut) as source:
        frames = _frames(source)
        notes = source.notes
    assert 100 < len(frames) < 300
    assert any(n.startswith("input ended at ") and n.endswith("it is probably truncated") for n in notes)
    # MPEG-TS has no index and no total to compare with: the decodable frames, nothing else.
    cut = _cut(shared_data / "video" / "bbb_mpeg2_vfr.ts", tmp_path / "cut.ts", 0.5)
    with FileSource(cut) as source:
        frames = _frames(source)
    assert 10 < len(frames) < 58 and frames[0].pts == 137250


def test_corrupt_data_mid_stream_is_an_input_error(tmp_path: Path) -> None:
    full = write_clip(
        tmp_path / "long.mp4", frames=40, width=320, height=240, container_options={"movflags": "faststart"}
    )
    data = bytearray(full.read_bytes())
    rng = np.random.default_rng(3)
    middle = len(data) // 2
    data[middle : middle + 4000] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    with (
        FileSource(broken) as source,
        pytest.raises(
            InputError,
            match=r"^input is truncated or corrupt after frame \d+ \(t=\d+\.\d{3} s\): Invalid data",
        ),
    ):
        _frames(source)


def test_a_cut_whose_edit_list_hides_samples_is_not_called_truncated(tmp_path: Path) -> None:
    # what `ffmpeg -ss 1.2 -i in.mp4 -c copy cut.mp4` makes: the samples from the keyframe before
    # the cut stay in the file (42 here), behind an edit list that shows 0.48 s (12 frames)
    src = write_clip(tmp_path / "cut.mp4", pts=list(range(-30, 12)), frames=42)
    with av.open(str(src)) as c:
        assert c.streams.video[0].frames == 42
    with FileSource(src) as source:
        assert (source.info.frame_count, source.info.frame_count_estimated) == (12, True)
        frames = [item for item in source.items() if not isinstance(item, av.Packet)]
        notes = source.run_notes()
    assert len(frames) == 12 and [f.pts for f in frames] == [512 * n for n in range(12)]
    assert not [n for n in notes if "truncated" in n]


def test_a_second_video_stream_is_named_once(tmp_path: Path) -> None:
    src = tmp_path / "two.mkv"
    with av.open(str(src), "w") as out:
        streams = []
        for width in (64, 32):
            s = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
            s.width, s.height, s.pix_fmt = width, 32, "yuv420p"
            streams.append(s)
        for i in range(3):
            for s in streams:
                frame = av.VideoFrame(s.width, 32, "yuv420p")
                for plane in frame.planes:
                    plane.update(bytes([16 * i]) * plane.buffer_size)
                frame.pts = i
                out.mux(s.encode(frame))
        for s in streams:
            out.mux(s.encode(None))
    with FileSource(src) as source:
        assert source.info.width == 64
        assert [n for n in source.info.notes if "video stream" in n] == [
            "video stream #1 (h264) is not copied: only one video stream is processed, #0"
        ]


def test_a_steady_rate_that_stops_is_named_where_and_for_how_long() -> None:
    from vsr.media.timestamps import GapWatch

    watch = GapWatch(Fraction(1, 30000))  # 29.97 fps in MP4's usual clock
    notes = [watch.next(1001 * n) for n in [*range(12), 14, 15, 16, 30, 31]]
    assert [n for n in notes if n] == [
        "the input has no frames for 0.100 s after 0.367 s (its steady 29.97 fps would have 2 there): "
        "frames the recording dropped or paused for, or a damaged stretch the demuxer skipped"
    ]
    assert watch.jumps == 2
    # a copy-cut's last frame past a gap (its B-frames before it were cut) is no news
    cut = GapWatch(Fraction(1, 30000))
    assert not any(cut.next(1001 * n) for n in [*range(12), 14]) and cut.jumps == 0
    # Matroska's millisecond clock: 33, 34, 33 ... is steady
    mkv = GapWatch(Fraction(1, 1000))
    assert not any(mkv.next(round(n * 1000 / 29.97)) for n in range(40)) and mkv.jumps == 0
    # variable-rate video jumps by design: nothing to say
    vfr = GapWatch(Fraction(1, 90000))
    steps = [3000, 3000, 27000, 3000, 6000, 3000, 3000, 12000, 3000, 3000] * 3
    pts = [sum(steps[:n]) for n in range(len(steps))]
    assert not any(vfr.next(p) for p in pts) and vfr.jumps == 0


def test_frames_missing_from_a_steady_clip_are_reported_by_a_run(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "holes.mkv", pts=[*range(10), *range(15, 20)], frames=15)
    with FileSource(src) as source:
        frames = [item for item in source.items() if not isinstance(item, av.Packet)]
        notes = source.run_notes()
    assert len(frames) == 15
    assert notes == [
        "the input has no frames for 0.240 s after 0.360 s (its steady 25 fps would have 5 there): "
        "frames the recording dropped or paused for, or a damaged stretch the demuxer skipped"
    ]
