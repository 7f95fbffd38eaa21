"""FileSink: identity round trips keep frames, timestamps, packets and tags; failures are one line."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vsr.errors import ConfigError, OutputError
from vsr.media import (
    ColorDescription,
    ColorMatrix,
    ColorRange,
    FileSink,
    FileSource,
    Frame,
    VideoInfo,
    VideoOutputSpec,
    incompatible_streams,
    spec_for_input,
)
from vsr.media.containers import partial_path

from clips import (
    av_clip,
    full_range_clip,
    hdr_tagged_clip,
    moving_planes,
    odd_size_clip,
    offset_clip,
    rotated_clip,
    ten_bit_clip,
    vfr_clip,
    write_clip,
)

LOSSLESS = {"crf": 0, "preset": "ultrafast"}


@dataclass
class Decoded:
    """Everything a round trip must keep, read back from a file."""

    info: VideoInfo
    seconds: list[Fraction] = field(default_factory=list)
    planes: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    packets: dict[str, list[bytes]] = field(default_factory=dict)
    packet_times: dict[str, list[Fraction | None]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def read_back(path: Path) -> Decoded:
    with FileSource(path) as source:
        out = Decoded(source.info)
        kinds = {
            s.index: f"{s.type}:{s.codec_context.codec.canonical_name}"
            for s in source.passthrough
            if s.codec_context
        }
        for item in source.items():
            if isinstance(item, Frame):
                out.seconds.append(Fraction(item.pts) * item.time_base)
                out.planes.append(tuple(p.copy() for p in item.planes))
            else:
                kind = kinds[item.stream_index]
                out.packets.setdefault(kind, []).append(bytes(item))
                time = None if item.pts is None else Fraction(item.pts) * item.time_base
                out.packet_times.setdefault(kind, []).append(time)
        out.notes = source.notes
    return out


def round_trip(src: Path, dst: Path, **spec_options: object) -> tuple[Decoded, Decoded, FileSink]:
    """Decode ``src`` and write its frames unchanged (and its packets) to ``dst``."""
    with FileSource(src) as source:
        spec, _ = spec_for_input(source.info, **({"codec": "libx264"} | LOSSLESS | spec_options))
        with FileSink(dst, spec, source.passthrough) as sink:
            for item in source.items():
                if isinstance(item, Frame):
                    sink.write_frame(item)
                else:
                    sink.write_packet(item)
    return read_back(src), read_back(dst), sink


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def min_psnr(before: Decoded, after: Decoded) -> float:
    """The worst plane PSNR over all frames (inf: every sample identical)."""
    peak = float((1 << before.info.bits) - 1)
    return min(
        psnr(a, b, peak)
        for fa, fb in zip(before.planes, after.planes, strict=True)
        for a, b in zip(fa, fb, strict=True)
    )


# -- round trips ----------------------------------------------------------------------------------


def test_mp4_round_trip_keeps_frames_pts_audio_subtitles_and_pixels(tmp_path: Path) -> None:
    src = av_clip(tmp_path, ".mp4")
    before, after, sink = round_trip(src, tmp_path / "out.mp4")
    assert len(after.seconds) == len(before.seconds) == 25
    assert after.seconds == before.seconds
    assert set(after.packets) == {"audio:aac", "subtitle:mov_text"}
    assert after.packets["audio:aac"] == before.packets["audio:aac"]
    assert after.packet_times["audio:aac"] == before.packet_times["audio:aac"]
    # The MP4 muxer fills gaps in a mov_text track with empty samples (b"\x00\x00"), and may add
    # one at the end; the cues themselves must be the same bytes.
    cues = [[p for p in d.packets["subtitle:mov_text"] if p != b"\x00\x00"] for d in (before, after)]
    assert cues[0] == cues[1] == [b"\x00\nfirst line", b"\x00\x0bsecond line"]
    assert min_psnr(before, after) == float("inf")
    assert not partial_path(tmp_path / "out.mp4").exists() and sink.notes == []


def test_mkv_round_trip_keeps_audio_subrip_ass_and_fonts(tmp_path: Path) -> None:
    src = av_clip(tmp_path, ".mkv")
    before, after, _ = round_trip(src, tmp_path / "out.mkv")
    assert after.seconds == before.seconds and len(after.seconds) == 25
    assert set(after.packets) == {"audio:aac", "subtitle:subrip", "subtitle:ass"}
    for kind in after.packets:
        assert after.packets[kind] == before.packets[kind], kind
    assert after.packets["subtitle:subrip"] == [b"first line", b"second line"]
    with av.open(str(tmp_path / "out.mkv")) as container:
        attachments = [s for s in container.streams if s.type == "attachment"]
        ass = next(
            s for s in container.streams if s.type == "subtitle" and s.codec_context.codec.name == "ssa"
        )
        assert [a.metadata["filename"] for a in attachments] == ["DejaVuSans.ttf"]
        assert attachments[0].data == b"\x00\x01\x00\x00not a real font"
        assert ass.codec_context.extradata.startswith(b"[Script Info]")


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".ts"])
def test_vfr_and_start_offset_timestamps_survive_exactly(tmp_path: Path, ext: str) -> None:
    before, after, _ = round_trip(vfr_clip(tmp_path), tmp_path / f"vfr_out{ext}")
    assert after.seconds == before.seconds
    assert len({b - a for a, b in zip(after.seconds, after.seconds[1:], strict=False)}) > 2  # still VFR
    before, after, _ = round_trip(offset_clip(tmp_path), tmp_path / f"offset_out{ext}")
    assert after.seconds == before.seconds and after.seconds[0] == Fraction(137250, 90000)


def test_matroska_rounds_to_milliseconds_and_says_so(tmp_path: Path) -> None:
    before, after, sink = round_trip(vfr_clip(tmp_path), tmp_path / "out.mkv")
    assert [round(s * 1000) for s in before.seconds] == [s * 1000 for s in after.seconds]
    rounded = sum(1 for s in before.seconds if (s * 1000).denominator != 1)
    assert rounded > 0
    assert sink.notes == [
        f"{rounded} of 20 timestamps fall between .mkv's 1/1000 s ticks and were rounded "
        "(use .mp4 or .mov to keep them exact)"
    ]


def test_ten_bit_stays_ten_bit_losslessly(tmp_path: Path) -> None:
    before, after, _ = round_trip(ten_bit_clip(tmp_path), tmp_path / "out.mp4")
    assert (after.info.pix_fmt, after.info.bits) == ("yuv420p10le", 10)
    assert after.info.color == before.info.color
    assert after.info.color.matrix == ColorMatrix.BT709 and after.info.color.primaries == 1
    assert min_psnr(before, after) == float("inf")


def test_hdr_tags_and_full_range_are_written(tmp_path: Path) -> None:
    _, after, _ = round_trip(hdr_tagged_clip(tmp_path), tmp_path / "hdr_out.mkv")
    color = after.info.color
    assert (color.matrix, color.range, color.primaries, color.transfer) == (
        ColorMatrix.BT2020_NCL, ColorRange.LIMITED, 9, 16,
    )  # fmt: skip
    before, after, _ = round_trip(full_range_clip(tmp_path), tmp_path / "full_out.mp4")
    assert before.info.pix_fmt == "yuvj420p"
    assert after.info.color.range == ColorRange.FULL and after.info.pix_fmt == "yuvj420p"
    with av.open(str(tmp_path / "full_out.mp4")) as container:
        assert container.streams.video[0].codec_context.color_range == 2


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_rotation_is_written(tmp_path: Path, ext: str) -> None:
    _, after, _ = round_trip(rotated_clip(tmp_path, 90), tmp_path / f"out{ext}")
    assert after.info.rotation == 90
    with av.open(str(tmp_path / f"out{ext}")) as container:
        assert next(container.decode(video=0)).rotation == 90


def test_rotation_in_ts_is_reported_lost(tmp_path: Path) -> None:
    _, after, sink = round_trip(rotated_clip(tmp_path, 90), tmp_path / "out.ts")
    assert after.info.rotation == 0
    # 1/25 s steps in 1/12800 are whole ticks of 1/90000: nothing is rounded, so nothing is said
    assert sink.notes == [".ts cannot store a rotation; the 90 degree rotation is lost"]


def test_odd_size_444_round_trip(tmp_path: Path) -> None:
    before, after, _ = round_trip(odd_size_clip(tmp_path), tmp_path / "out.mp4")
    assert (after.info.width, after.info.height, after.info.pix_fmt) == (853, 481, "yuv444p")
    assert min_psnr(before, after) == float("inf")


def test_real_clip_round_trip_keeps_aac_bytes(shared_data: Path, tmp_path: Path) -> None:
    before, after, _ = round_trip(shared_data / "video" / "sample_1080x720_aac.mp4", tmp_path / "out.mp4")
    assert len(after.seconds) == 30 and after.seconds == before.seconds
    assert after.packets["audio:aac"] == before.packets["audio:aac"] and len(after.packets["audio:aac"]) == 45
    assert after.packet_times["audio:aac"] == before.packet_times["audio:aac"]


def test_adts_aac_from_ts_is_stored_raw_in_mp4(tmp_path: Path) -> None:
    # MPEG-TS carries AAC with a 7-byte ADTS header per frame; MP4 stores the raw frame plus an
    # AudioSpecificConfig, which the sink extracts. The video starts 1920/90000 s after the audio,
    # an offset the default 1/1000 MP4 movie timescale could not express.
    src = write_clip(tmp_path / "aac.ts", audio=True, frames=25)
    before, after, _ = round_trip(src, tmp_path / "out.mp4")
    assert after.seconds == before.seconds and before.seconds[0] == Fraction(1920, 90000)
    assert after.packets["audio:aac"] == [p[7:] for p in before.packets["audio:aac"]]
    assert after.packet_times["audio:aac"] == before.packet_times["audio:aac"]
    with av.open(str(tmp_path / "out.mp4")) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.extradata == b"\x11\x90"  # AAC-LC, 48 kHz, stereo
        assert sum(len(stream.decode(p)) for p in container.demux(stream)) == 48


@pytest.mark.parametrize("codec", ["libx265", "libsvtav1"])
def test_other_encoders_write_ten_bit(tmp_path: Path, codec: str) -> None:
    src = write_clip(tmp_path / "small.mp4", width=64, height=64, pix_fmt="yuv420p10le", frames=4)
    before, after, _ = round_trip(src, tmp_path / "out.mkv", codec=codec, crf=None, preset=None)
    assert after.info.codec == {"libx265": "hevc", "libsvtav1": "av1"}[codec]
    assert after.info.pix_fmt == "yuv420p10le" and after.seconds == before.seconds
    assert psnr(before.planes[0][0], after.planes[0][0], 1023) > 30


def test_audio_priming_before_zero_shifts_ts_output_in_sync(tmp_path: Path) -> None:
    # AAC packets start at -1024/48000 s; MPEG-TS cannot store that, so everything moves.
    src = write_clip(tmp_path / "aac.mp4", audio=True, frames=25)
    before, after, sink = round_trip(src, tmp_path / "out.ts")
    assert before.packet_times["audio:aac"][0] == Fraction(-1024, 48000)
    assert after.packet_times["audio:aac"][0] >= 0
    shift = after.seconds[0] - before.seconds[0]
    assert [t + shift for t in before.packet_times["audio:aac"]] == after.packet_times["audio:aac"]
    assert len(after.packets["audio:aac"]) == 48
    assert (
        "the input has timestamps before 0 (encoder delay); .ts may shift all streams by that small "
        "amount to store them (sync is kept; .mp4 keeps the times)"
    ) in sink.notes


# -- abort and crash safety -----------------------------------------------------------------------


def _spec(**overrides: object) -> VideoOutputSpec:
    values = {
        "width": 160,
        "height": 96,
        "pix_fmt": "yuv420p",
        "time_base": Fraction(1, 25),
        "frame_rate": Fraction(25),
        "color": ColorDescription(matrix=ColorMatrix.BT709, range=ColorRange.LIMITED),
        "preset": "ultrafast",
    }
    return VideoOutputSpec(**(values | overrides))  # type: ignore[arg-type]


def _frame(
    index: int, pts: int | None = None, pix_fmt: str = "yuv420p", size: tuple[int, int] = (160, 96)
) -> Frame:
    return Frame(
        index=index,
        pts=index if pts is None else pts,
        time_base=Fraction(1, 25),
        pix_fmt=pix_fmt,
        width=size[0],
        height=size[1],
        planes=moving_planes(pix_fmt, *size, index),
        color=ColorDescription(),
    )


def test_abort_keeps_a_playable_partial_file(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    sink = FileSink(out, _spec())
    for i in range(30):
        sink.write_frame(_frame(i))
    kept = sink.abort()
    assert kept == tmp_path / "out.partial.mp4" and kept.exists()
    assert not out.exists()
    decoded = read_back(kept)
    assert len(decoded.seconds) == 30 and decoded.seconds[-1] == Fraction(29, 25)
    assert sink.abort() == kept  # idempotent


def test_abort_without_frames_leaves_nothing(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "out.mkv", _spec())
    assert sink.abort() is None
    assert list(tmp_path.iterdir()) == []


def test_context_manager_aborts_on_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError), FileSink(tmp_path / "out.ts", _spec()) as sink:
        sink.write_frame(_frame(0))
        raise KeyError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["out.partial.ts"]


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".ts"])
def test_partial_file_is_readable_while_still_being_written(tmp_path: Path, ext: str) -> None:
    # What a crash would leave: the file as it is on disk before close(), copied mid-run.
    sink = FileSink(tmp_path / f"out{ext}", _spec())
    for i in range(100):  # 4 s at 25 fps; fragments and clusters are cut every second
        sink.write_frame(_frame(i))
    snapshot = shutil.copy(sink.partial_path, tmp_path / f"snapshot{ext}")
    sink.close()
    decoded = read_back(Path(snapshot))
    assert len(decoded.seconds) >= 70  # all but the last second or so
    assert decoded.seconds == [Fraction(i, 25) for i in range(len(decoded.seconds))]


# -- refusals -------------------------------------------------------------------------------------


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^cannot write \.avi files; use one of \.mp4, \.mov, \.mkv, \.ts, \.m3u8$"
    ):
        FileSink(tmp_path / "out.avi", _spec())
    with pytest.raises(
        ConfigError, match=r"^unknown encoder 'mpeg4'; vsr encodes with libx264, libx265, libsvtav1"
    ):
        _spec(codec="mpeg4")
    with pytest.raises(ConfigError, match=r"^crf 60 is out of range for libx264 \(0\.\.51\)$"):
        _spec(crf=60)
    with pytest.raises(ConfigError, match=r"^libsvtav1 has no preset 'p4'; use one of -1, 0, 1"):
        _spec(codec="libsvtav1", preset="p4")
    with pytest.raises(ConfigError, match=r"^output pixel format 'yuv411p' is not one the pipeline produces"):
        _spec(pix_fmt="yuv411p")


def test_output_path_errors(tmp_path: Path) -> None:
    with pytest.raises(
        OutputError, match=r"^cannot write .*nowhere/out\.mp4: the folder .*nowhere does not exist$"
    ):
        FileSink(tmp_path / "nowhere" / "out.mp4", _spec())
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(OutputError, match=r"^output is a folder: .*folder\.mp4; give a file name"):
        FileSink(tmp_path / "folder.mp4", _spec())
    src = av_clip(tmp_path, ".mkv")
    with (
        FileSource(src) as source,
        pytest.raises(OutputError, match=r"^output is the input file: .*av\.mkv; choose"),
    ):
        FileSink(src, _spec(), source.passthrough)
    with pytest.raises(OutputError, match=r"^output is the input file: "):
        FileSink(src, _spec(), source_path=src)


def test_unwritable_folder(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: folder permissions do not stop root from writing")
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(OutputError, match=r"^cannot write .*ro/out\.mp4: the folder .*ro is not writable$"):
        FileSink(folder / "out.mp4", _spec())


def test_streams_a_container_cannot_carry(tmp_path: Path) -> None:
    src = av_clip(tmp_path, ".mp4")
    with FileSource(src) as source:
        assert incompatible_streams(".mkv", source.passthrough) == [
            "subtitle stream #2 (mov_text): use .mp4 or .mov"
        ]
        assert incompatible_streams("mp4", source.passthrough) == []
        assert incompatible_streams(".ts", source.passthrough) == [
            "subtitle stream #2 (mov_text): use .mp4 or .mov"
        ]
        with pytest.raises(
            ConfigError, match=r"^\.mkv cannot carry subtitle stream #2 \(mov_text\): use \.mp4 or \.mov$"
        ):
            FileSink(tmp_path / "out.mkv", _spec(), source.passthrough)
    assert not (tmp_path / "out.partial.mkv").exists()
    with FileSource(av_clip(tmp_path, ".mkv")) as source:
        assert incompatible_streams(".mp4", source.passthrough) == [
            "subtitle stream #2 (subrip): use .mkv",
            "subtitle stream #3 (ass): use .mkv",
        ]


def test_encoder_refusing_the_size_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"^libx264 refused to encode 853x481 yuv420p: "):
        FileSink(tmp_path / "out.mp4", _spec(width=853, height=481))
    assert list(tmp_path.iterdir()) == []
    if not os.path.exists("/dev/nvidia0"):  # no NVIDIA driver here: NVENC cannot open
        with pytest.raises(
            OutputError, match=r"^h264_nvenc refused to encode 160x96 yuv420p: .*\(NVENC needs"
        ):
            FileSink(tmp_path / "out.mp4", _spec(codec="h264_nvenc", preset=None))


def test_frames_that_do_not_fit_are_programming_errors(tmp_path: Path) -> None:
    with FileSink(tmp_path / "out.mkv", _spec()) as sink:
        with pytest.raises(ValueError, match="frame 0 is 64x48, the output is 160x96"):
            sink.write_frame(_frame(0, size=(64, 48)))
        sink.write_frame(_frame(0, pts=5))
        with pytest.raises(ValueError, match="frame 1 has pts 5, not after the previous frame's 5"):
            sink.write_frame(_frame(1, pts=5))
        with pytest.raises(ValueError, match="plane 0 is uint16, a yuv420p frame needs uint8"):
            sink.write_frame(replace(_frame(2, pts=10), planes=moving_planes("yuv420p10le", 160, 96, 2)))


def test_close_without_frames_is_an_output_error(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "out.mp4", _spec())
    with pytest.raises(OutputError, match=r"^no video frame was written; .*out\.mp4 was not created$"):
        sink.close()
    assert list(tmp_path.iterdir()) == []


def test_write_failure_is_an_output_error(tmp_path: Path) -> None:
    # A file-size limit makes writes fail the way a full disk does, without filling a disk.
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from fractions import Fraction
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from clips import moving_planes
        from vsr.errors import OutputError
        from vsr.media import ColorDescription, FileSink, Frame, VideoOutputSpec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        spec = VideoOutputSpec(width=320, height=240, pix_fmt="yuv420p", time_base=Fraction(1, 25),
                               crf=0, preset="ultrafast")
        sink = FileSink({str(tmp_path / "out.ts")!r}, spec)
        try:
            for i in range(200):
                planes = moving_planes("yuv420p", 320, 240, i, seed=i)
                sink.write_frame(Frame(index=i, pts=i, time_base=Fraction(1, 25), pix_fmt="yuv420p",
                                       width=320, height=240, planes=planes, color=ColorDescription()))
            sink.close()
        except OutputError as error:
            print(error)
            print(sink.abort())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    message, kept = result.stdout.strip().splitlines()
    assert message.startswith(f"writing {tmp_path / 'out.partial.ts'} failed while encoding frame ")
    assert "File too large" in message
    assert kept == str(tmp_path / "out.partial.ts")


def test_encoded_packets_get_their_frames_durations_and_unclaimed_ones_do_not_pile_up() -> None:
    from types import SimpleNamespace

    import vsr.media.muxer as muxer_module

    muxer = muxer_module.VideoMuxer.__new__(muxer_module.VideoMuxer)
    muxer.spec = SimpleNamespace(time_base=Fraction(1, 90000))
    muxer._durations = {0: 29280, 29280: 3000, 32280: 3000}

    def packet(pts: int, time_base: Fraction, duration: int = 0) -> av.Packet:
        p = av.Packet(b"x")
        p.pts, p.time_base, p.duration = pts, time_base, duration
        return p

    # B-frame order; the last packet in the encoder's own time base, 1/30000
    out = muxer._with_durations(
        [
            packet(0, Fraction(1, 90000)),
            packet(32280, Fraction(1, 90000), duration=7),
            packet(9760, Fraction(1, 30000)),
        ]
    )
    assert [p.duration for p in out] == [29280, 7, 1000]  # an encoder's own duration is kept
    assert muxer._durations == {}  # each claimed once, the kept one too
    muxer._durations = {pts: 1 for pts in range(600)}  # frames an encoder dropped
    muxer._with_durations([packet(1000, Fraction(1, 90000))])
    assert sorted(muxer._durations) == list(range(344, 600))


def test_segments_rescale_each_frames_duration_with_its_pts(tmp_path: Path) -> None:
    from vsr.media.segments import SegmentSink

    # frames in 1/25 with a duration of one tick, written into a 1/1000 output: the last one ends
    # at 0.4 s, not 1 ms after it starts
    sink = SegmentSink(tmp_path / "out.mkv", _spec(time_base=Fraction(1, 1000)), 60.0)
    for i in range(10):
        sink.write_frame(replace(_frame(i), duration=1))
    last = sink.close()
    with av.open(str(last)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
    end = max(packets, key=lambda p: p.pts)
    assert len(packets) == 10 and (end.pts + end.duration) * end.time_base == Fraction(2, 5)


def _repeating_audio_clip(path: Path) -> Path:
    """A Matroska clip whose audio packets repeat a timestamp now and then, as TrueHD's 0.83 ms
    frames do on Matroska's 1 ms clock (Matroska takes equal dts; MPEG-TS does not)."""
    write_clip(path, frames=10, audio=True)
    with av.open(str(path)) as src:
        packets = [p for p in src.demux() if p.size]
        video = [p for p in packets if p.stream.type == "video"]
        audio = [p for p in packets if p.stream.type == "audio"]
        template_v, template_a = src.streams.video[0], src.streams.audio[0]
        repeated = path.with_name("repeats.mkv")
        with av.open(str(repeated), "w") as out:
            v, a = out.add_stream_from_template(template_v), out.add_stream_from_template(template_a)
            for p in video:
                p.stream = v
                out.mux(p)
            for n, p in enumerate(audio):  # 0, 1, 2, 2, 3, 4, 5, 5, ... ms
                p.time_base = Fraction(1, 1000)
                p.pts = p.dts = n - n // 4
                p.stream = a
                out.mux(p)
    return repeated


def test_repeated_dts_of_a_copied_stream_are_moved_forward_where_the_muxer_needs_it(tmp_path: Path) -> None:
    src = _repeating_audio_clip(tmp_path / "clip.mkv")
    with FileSource(src) as source:
        spec, _ = spec_for_input(source.info, preset="ultrafast")
    with av.open(str(src)) as c:
        before = [(bytes(p), p.dts) for p in c.demux(c.streams.audio[0]) if p.size]
    assert len({d for _, d in before}) < len(before)  # the input does repeat
    for ext in (".ts", ".mkv"):
        out = tmp_path / f"out{ext}"
        with FileSource(src) as source, FileSink(out, spec, source.passthrough) as sink:
            for item in source.items():
                sink.write_packet(item) if isinstance(item, av.Packet) else sink.write_frame(item)
            notes = sink.notes
        with av.open(str(out)) as c:
            after = [(bytes(p), p.dts) for p in c.demux(c.streams.audio[0]) if p.size]
        # every packet, byte for byte (MPEG-TS puts an ADTS header before each AAC frame)
        assert [b[7:] if b[:2] == b"\xff\xf1" else b for b, _ in after] == [b for b, _ in before]
        dts = [d for _, d in after]
        moved = "stream #1: repeated or backward timestamps were moved forward by a tick, as .ts requires"
        if ext == ".ts":  # strictly increasing, each moved by one 90 kHz tick at most
            assert all(b > a for a, b in itertools.pairwise(dts))
            assert max(d - round(o * 90) for d, (_, o) in zip(dts, before, strict=True)) == 1
            assert notes.count(moved) == 1
        else:  # Matroska takes them as they are
            assert dts == [d for _, d in before] and not [n for n in notes if "moved forward" in n]


def test_rescaling_rounds_as_ffmpeg_does() -> None:
    from vsr.media.copied_dts import rescale as _rescale

    assert _rescale(3, Fraction(1, 1000), Fraction(1, 90000)) == 270
    assert _rescale(1, Fraction(1, 2), Fraction(1)) == 1  # halves away from zero
    assert _rescale(-1, Fraction(1, 2), Fraction(1)) == -1
    assert _rescale(1, Fraction(1, 3), Fraction(1)) == 0
    assert _rescale(-2, Fraction(1, 3), Fraction(1)) == -1


def test_an_output_name_without_an_extension_is_named_as_such() -> None:
    from vsr.media.containers import container_for

    for name in ("out", "out."):
        with pytest.raises(
            ConfigError,
            match=rf"^cannot write {re.escape(name)}: it has no extension to name a format; use one of ",
        ):
            container_for(Path(name))
    assert container_for("mkv").ext == container_for(".mkv").ext == container_for("a/b.MKV").ext == ".mkv"
