"""Several encoders on GOP-aligned chunks: one ordinary stream, as one encoder would write it."""

from __future__ import annotations

import errno
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from vsr.cli import app
from vsr.errors import ConfigError, OutputError
from vsr.media import ColorDescription, FileSink, FileSource, Frame, VideoOutputSpec, chunked_encode
from vsr.media.chunked_encode import MAX_ENCODER_INSTANCES, chunk_frames
from vsr.media.hls import HlsSink
from vsr.media.muxer import VideoMuxer
from vsr.pipeline.options import UpscaleOptions

from clips import av_clip, moving_planes, write_clip

W, H = 320, 240
TB = Fraction(1, 25)
GOP = 10  # chunks of 10 frames: several chunks in a short clip


def frames(count: int, pts: list[int] | None = None, time_base: Fraction = TB) -> Iterator[Frame]:
    for index, value in enumerate(pts if pts is not None else range(count)):
        yield Frame(
            index=index, pts=value, time_base=time_base, pix_fmt="yuv420p", width=W, height=H,
            planes=moving_planes("yuv420p", W, H, index), color=ColorDescription(),
        )  # fmt: skip


def spec(
    instances: int, *, codec: str = "libx264", time_base: Fraction = TB, **kw: object
) -> VideoOutputSpec:
    options = {"g": str(GOP)} | kw.pop("options", {})  # type: ignore[operator]
    return VideoOutputSpec(
        width=W, height=H, pix_fmt="yuv420p", time_base=time_base, frame_rate=Fraction(25), codec=codec,
        preset="veryfast", threads=1, encoder_instances=instances, options=options, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def encode(path: Path, out_spec: VideoOutputSpec, source: Iterator[Frame]) -> list[str]:
    with FileSink(path, out_spec) as sink:
        for frame in source:
            sink.write_frame(frame)
        notes = sink.notes
    return notes


def packets(path: Path) -> list[tuple[Fraction, Fraction | None, bool]]:
    """(pts, dts, keyframe) of the video packets in file order, in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        return [
            (p.pts * tb, None if p.dts is None else p.dts * tb, p.is_keyframe)
            for p in container.demux(stream)
            if p.size
        ]


def decoded(path: Path) -> tuple[list[Fraction], list[tuple[np.ndarray, ...]]]:
    """The decoded frames' times (seconds) and planes."""
    with FileSource(path) as source:
        out = [f for f in source.items() if isinstance(f, Frame)]
    return [f.pts * f.time_base for f in out], [tuple(p.copy() for p in f.planes) for f in out]


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_chunks_make_the_stream_one_encoder_makes(tmp_path: Path, codec: str) -> None:
    """Same frame count, pts and (constant frame rate) dts as one encoder; dts increase; every
    chunk starts with a keyframe; B-frames are in use (dts run before pts)."""
    one, many = tmp_path / "one.mp4", tmp_path / "many.mp4"
    encode(one, spec(1, codec=codec), frames(47))
    notes = encode(many, spec(3, codec=codec), frames(47))
    assert not notes
    single, chunked = packets(one), packets(many)
    assert len(chunked) == 47
    assert decoded(many)[0] == decoded(one)[0] == [i * TB for i in range(47)]
    dts = [d for _, d, _ in chunked]
    assert all(d is not None for d in dts) and all(a < b for a, b in itertools.pairwise(dts))  # type: ignore[operator]
    assert dts == [d for _, d, _ in single]
    assert all(d <= p for p, d, _ in chunked)  # type: ignore[operator]
    assert dts[0] < chunked[0][0], "no B-frame delay: the dts stitching went untested"
    for start in range(0, 47, GOP):  # a chunk is GOP packets: its first is its first frame, a keyframe
        assert chunked[start][2] and chunked[start][0] == start * TB, start


def test_lossless_chunks_decode_to_the_input_frames_in_order(tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    encode(out, spec(4, crf=0), frames(53))
    _, planes = decoded(out)
    assert len(planes) == 53
    for index, got in enumerate(planes):
        for plane, want in zip(got, moving_planes("yuv420p", W, H, index), strict=True):
            assert np.array_equal(plane, want), f"frame {index} differs"


def test_variable_frame_rate_keeps_pts_and_monotonic_dts(tmp_path: Path) -> None:
    """Irregular pts: each encoder extrapolates its first dts from its own first frames, which
    collides with the previous chunk's; the stitched dts must still rise and stay <= pts."""
    tb = Fraction(1, 90000)
    steps = [3600, 3600, 27000, 3600, 7200, 3600, 1800, 14400, 3600, 3600, 900, 3600]
    pts = [0]
    for n in range(57):
        pts.append(pts[-1] + steps[n % len(steps)])
    out = tmp_path / "out.mp4"
    encode(out, spec(3, time_base=tb), frames(len(pts), pts, tb))
    got = packets(out)
    assert decoded(out)[0] == [v * tb for v in pts]
    dts = [d for _, d, _ in got]
    assert all(a < b for a, b in itertools.pairwise(dts)), dts  # type: ignore[operator]
    assert all(d <= p for p, d, _ in got)  # type: ignore[operator]


@pytest.mark.parametrize("fail_at", [25, 5])
def test_a_worker_failure_is_one_line_and_keeps_the_chunks_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    real = chunked_encode.encode_frame

    def failing(context: object, frame: av.VideoFrame | None) -> list[av.Packet]:
        if frame is not None and frame.pts == fail_at:
            raise av.FFmpegError(errno.EIO, "Input/output error")
        return real(context, frame)  # type: ignore[arg-type]

    monkeypatch.setattr(chunked_encode, "encode_frame", failing)
    out = tmp_path / "out.mp4"
    sink = FileSink(out, spec(2))
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            for frame in frames(60):
                sink.write_frame(frame)
            sink.close()
        except BaseException as error:
            outcome["error"] = error

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "a failed encoder hung the writer"
    error = outcome["error"]
    assert isinstance(error, OutputError) and "\n" not in str(error)
    failed_chunk = fail_at // GOP * GOP
    assert f"chunk from frame {failed_chunk}" in str(error) and "Input/output error" in str(error)
    partial = sink.abort()
    assert not out.exists()
    if failed_chunk == 0:  # nothing to watch: no partial file is left
        assert partial is None and not sink.partial_path.exists()
    else:  # the whole chunks before the failed one, playable
        assert partial is not None and len(decoded(partial)[0]) == failed_chunk


def test_abort_keeps_every_frame_given(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    sink = FileSink(out, spec(3))
    for frame in frames(27):
        sink.write_frame(frame)
    partial = sink.abort()
    assert partial is not None and len(decoded(partial)[0]) == 27


def test_in_flight_chunks_stay_bounded_when_the_encoders_are_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = chunked_encode.encode_frame

    def slow(context: object, frame: av.VideoFrame | None) -> list[av.Packet]:
        time.sleep(0.01)
        return real(context, frame)  # type: ignore[arg-type]

    monkeypatch.setattr(chunked_encode, "encode_frame", slow)
    instances, (_, chunk) = 2, chunk_frames(spec(2))
    with FileSink(tmp_path / "out.mkv", spec(instances)) as sink:
        encoder = sink._muxer._chunked
        assert encoder is not None
        most_chunks = most_frames = 0
        for frame in frames(80):
            sink.write_frame(frame)
            most_chunks = max(most_chunks, len(encoder._in_flight))
            most_frames = max(most_frames, sum(c.frames.qsize() for c in encoder._in_flight))
    assert most_chunks == instances
    assert most_frames <= instances * chunk + instances  # frames, plus each chunk's end marker


def test_differing_headers_fall_back_to_one_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = VideoMuxer._new_instance
    made = []

    def other_profile(self: VideoMuxer, options: dict[str, str], threads: int) -> object:
        made.append(1)  # the second probe instance has another SPS
        return real(self, options | ({"profile": "baseline"} if len(made) == 2 else {}), threads)

    monkeypatch.setattr(VideoMuxer, "_new_instance", other_profile)
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING):
        notes = encode(out, spec(3), frames(30))
    assert any("different headers (extradata)" in n and "one encoder" in n for n in notes)
    assert "different headers" in caplog.text
    assert len(made) == 2 and len(decoded(out)[0]) == 30  # no chunk encoder was made after


def test_a_chunk_encoder_with_other_headers_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = VideoMuxer._new_instance
    made = []

    def later_differs(self: VideoMuxer, options: dict[str, str], threads: int) -> object:
        made.append(1)
        return real(self, options | ({"profile": "baseline"} if len(made) == 4 else {}), threads)

    monkeypatch.setattr(VideoMuxer, "_new_instance", later_differs)
    sink = FileSink(tmp_path / "out.mp4", spec(2))
    source = frames(40)
    sink.write_frame(next(source))
    deadline = time.monotonic() + 10
    while len(made) < 3 and time.monotonic() < deadline:  # the first chunk's encoder is made
        time.sleep(0.01)
    with pytest.raises(OutputError, match=r"chunk from frame 10 made other headers .*--encoders 1"):
        for frame in source:
            sink.write_frame(frame)
        sink.close()
    partial = sink.abort()
    assert partial is not None and len(decoded(partial)[0]) == GOP


def test_passthrough_packets_are_all_kept(tmp_path: Path) -> None:
    """Audio and subtitles wait for the chunks' video, and every packet of them is written."""
    clip = av_clip(tmp_path, ".mkv", frames=40)
    out = tmp_path / "out.mkv"
    copied: dict[str, list[bytes]] = {}
    with FileSource(clip) as source:
        kinds = {s.index: s.type for s in source.passthrough}
        with FileSink(out, spec(3, time_base=source.info.time_base), source.passthrough) as sink:
            mine = frames(40, time_base=source.info.time_base)
            for item in source.items():
                if isinstance(item, Frame):  # a frame of the output's size at the input frame's time
                    frame = next(mine)
                    sink.write_frame(Frame(**{**vars_of(frame), "pts": item.pts}))
                else:
                    sink.write_packet(item)
                    if item.size:
                        copied.setdefault(kinds[item.stream_index], []).append(bytes(item))
    written: dict[str, list[bytes]] = {}
    with av.open(str(out)) as container:
        for packet in container.demux():
            if packet.size and packet.stream.type != "video":
                written.setdefault(packet.stream.type, []).append(bytes(packet))
    assert written == copied and len(copied["audio"]) > 10 and copied["subtitle"]
    assert len(decoded(out)[0]) == 40


def vars_of(frame: Frame) -> dict[str, object]:
    return {name: getattr(frame, name) for name in frame.__dataclass_fields__}


def test_outputs_that_cannot_chunk_use_one_encoder_and_say_so(tmp_path: Path) -> None:
    with HlsSink(tmp_path / "index.m3u8", spec(2), segment_s=1) as sink:
        for frame in frames(12):
            sink.write_frame(frame)
        assert any("one encoder" in n for n in sink.notes)


def test_bad_encoder_counts_are_config_errors() -> None:
    for count in (0, -1, MAX_ENCODER_INSTANCES + 1):
        with pytest.raises(ConfigError, match="--encoders"):
            spec(count)
        with pytest.raises(ConfigError, match="--encoders"):
            UpscaleOptions(encoder_instances=count)
    with pytest.raises(ConfigError, match="--encoders 2 needs libx264 or libx265; libsvtav1"):
        UpscaleOptions(encoder_instances=2, codec="libsvtav1")
    UpscaleOptions(encoder_instances=1, codec="libsvtav1")  # one instance is every encoder's


def test_encoders_option_bad_values_give_one_line(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=4)
    runner = CliRunner()
    for args, expected in [
        (["--encoders", "0"], "--encoders must be a whole number of at least 1"),
        (["--encoders", str(MAX_ENCODER_INSTANCES + 1)], f"more than {MAX_ENCODER_INSTANCES}"),
        (["--encoders", "2", "--codec", "libsvtav1"], "needs libx264 or libx265"),
    ]:
        result = runner.invoke(app, ["upscale", str(clip), str(tmp_path / "o.mp4"), "-m", "lanczos", *args])
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and expected in lines[0], (args, result.stderr)
    result = runner.invoke(app, ["bench", str(clip), "-m", "lanczos", "--encoders", "0"])
    assert result.exit_code == 2 and "--encoders" in result.stderr


def test_upscale_with_encoders_writes_every_frame(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=30)
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(
        app, ["upscale", str(clip), str(out), "-m", "bicubic", "--encoders", "2", "--preset", "ultrafast"]
    )
    assert result.exit_code == 0, result.stderr
    assert "2 instances on GOP-aligned chunks" in result.stderr
    assert len(packets(out)) == 30
