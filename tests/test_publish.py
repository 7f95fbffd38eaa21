"""Outputs for surveillance: RTSP republishing, HLS playlists, and live audio kept.

The RTSP tests publish to GStreamer's gst-rtsp-server (``tools/rtsp_server.py --record``), whose
record mount writes what it receives, untouched, into a Matroska file that is then read back.
They skip, saying why, where the server cannot run. The model is bicubic everywhere.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from vsr.cli import app
from vsr.errors import OutputError
from vsr.media.color import ColorDescription, ColorMatrix, ColorRange
from vsr.media.frame import Frame
from vsr.media.hls import HlsSink
from vsr.media.output_spec import VideoOutputSpec
from vsr.media.publish import RtspSink
from vsr.media.segments import SegmentSink
from vsr.media.sink import FileSink

from clips import moving_planes, write_clip
from rtsp_server import RtspServer, rtsp_unavailable
from stream_servers import silent_listener

needs_server = pytest.mark.skipif(rtsp_unavailable() is not None, reason=str(rtsp_unavailable()))
CLIP = "sample_1080x720_aac.mp4"  # 30 frames at 29.97 fps, with AAC
CLIP_FRAMES = 30
SMALL = ("-m", "bicubic", "--size", "216x144", "--preset", "ultrafast", "-q")


@pytest.fixture
def clip(shared_data: Path) -> Path:
    return shared_data / "video" / CLIP


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[tuple[RtspServer, Path]]:
    recording = tmp_path / "recorded.mkv"
    server = RtspServer(audio=True, record=recording)
    try:
        yield server, recording
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _upscale(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, ["upscale", *args])
    return result.exit_code, result.output.strip().splitlines()


def _packets(path: Path, kind: str = "video") -> list[av.Packet]:
    with av.open(str(path)) as container:
        stream = container.streams.get(**{kind: 0})[0]
        return [p for p in container.demux(stream) if p.size]


def _wait_for_recording(path: Path, timeout_s: float = 15.0) -> None:
    # The server finishes the file after the TEARDOWN, on its own thread: wait until it opens
    # and has stopped growing.
    deadline = time.monotonic() + timeout_s
    last = -1
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else -1
        if size > 0 and size == last:
            try:
                with av.open(str(path)) as container:
                    if container.streams.video:
                        return
            except av.FFmpegError:
                pass
        last = size
        time.sleep(0.3)
    raise AssertionError(f"the server did not finish {path} within {timeout_s:g} s")


def _decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# -- RTSP publish -----------------------------------------------------------------------------


@needs_server
def test_republished_file_is_recorded_upscaled_whole_and_in_order(
    clip: Path, recorder: tuple[RtspServer, Path]
) -> None:
    server, recording = recorder
    code, lines = _upscale(str(clip), server.record_url, *SMALL)
    assert code == 0, lines
    _wait_for_recording(recording)
    with av.open(str(recording)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (216, 144)
        assert [s.type for s in container.streams] == ["video", "audio"]
    packets = _packets(recording)
    assert len(packets) == CLIP_FRAMES and _decoded_frames(recording) == CLIP_FRAMES
    pts = [p.pts for p in packets]
    assert all(b > a for a, b in itertools.pairwise(pts))
    # tune=zerolatency took effect: no B-frames, so every packet is presented as it is decoded
    assert all(p.pts == p.dts for p in packets)
    assert packets[0].is_keyframe
    assert len(_packets(recording, "audio")) > 0


@pytest.mark.slow
@needs_server
def test_keyframe_every_two_seconds_in_a_publish(
    shared_data: Path, recorder: tuple[RtspServer, Path]
) -> None:
    server, recording = recorder
    clip = shared_data / "video" / "bigbuckbunny.mp4"  # 132 frames at 25 fps
    code, lines = _upscale(str(clip), server.record_url, "-m", "bicubic", "--size", "160x90", "-q")
    assert code == 0, lines
    _wait_for_recording(recording)
    keyframes = [i for i, p in enumerate(_packets(recording)) if p.is_keyframe]
    assert keyframes == [0, 50, 100]  # x264's default would be one keyframe in 250 frames


@needs_server
def test_a_live_rtsp_feed_is_republished_x2_with_every_frame(tmp_path: Path) -> None:
    # One server: the camera's mount plays the clip once at its 10 fps, the record mount takes
    # vsr's publish and writes it untouched. 10 fps of 320x240 through bicubic leaves no reason
    # to drop a frame, so what is recorded is every frame the camera sent.
    feed = write_clip(tmp_path / "cam.mp4", width=320, height=240, frames=20, time_base=Fraction(1, 10),
                      rate=Fraction(10), options={"g": "10"})  # fmt: skip
    recording = tmp_path / "recorded.mkv"
    server = RtspServer(feed, record=recording)
    try:
        run = tmp_path / "run.json"
        code, lines = _upscale(
            server.url, server.record_url, "-m", "bicubic", "-s", "2", "-q",
            "--reconnect-attempts", "0", "--json", str(run),
        )  # fmt: skip
        assert code == 0, lines
        _wait_for_recording(recording)
    finally:
        server.stop()
    summary = json.loads(run.read_text())
    assert summary["output"] == server.record_url
    assert summary["live"]["live_mode"] is True  # an rtsp:// input is live without --live
    assert summary["live"]["connections"] == 1 and summary["live"]["frames_dropped"] == 0
    assert summary["frames_in"] == summary["frames_out"] == 20
    with av.open(str(recording)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (640, 480)
        assert video.time_base == Fraction(1, 1000)  # Matroska's
    packets = _packets(recording)
    assert len(packets) == _decoded_frames(recording) == summary["frames_out"]
    assert [p.pts for p in packets] == [100 * i for i in range(20)]  # the camera's 10 fps, exactly


def test_publish_to_nothing_listening_is_one_line_and_exit_1(clip: Path) -> None:
    url = f"rtsp://127.0.0.1:{_free_port()}/publish"
    code, lines = _upscale(str(clip), url, *SMALL)
    assert code == 1
    assert lines == [f"vsr: error: the RTSP server refused the publish to {url}: Connection refused"]


@needs_server
def test_publish_to_a_wrong_mount_is_one_line_and_exit_1(
    clip: Path, recorder: tuple[RtspServer, Path]
) -> None:
    server, recording = recorder
    url = server.record_url.rsplit("/", 1)[0] + "/nope"
    code, lines = _upscale(str(clip), url, *SMALL)
    assert code == 1
    assert lines == [
        f"vsr: error: the RTSP server refused the publish to {url}: Server returned 404 Not Found"
    ]
    assert not recording.exists()


@pytest.mark.parametrize("server", ["listener", pytest.param("frozen", marks=needs_server)])
def test_publish_to_a_server_that_never_answers_times_out_in_one_line(
    clip: Path, tmp_path: Path, server: str
) -> None:
    # A frozen server (SIGSTOP) still has its kernel accept the TCP connection; then nothing
    # answers. A socket that listens and never accepts looks the same from outside. FFmpeg's
    # own error for it is "Invalid data found when processing input".
    with contextlib.ExitStack() as stack:
        if server == "frozen":
            rtsp = RtspServer(record=tmp_path / "recorded.mkv")
            stack.callback(rtsp.stop)
            rtsp.freeze()
            url = rtsp.record_url
        else:
            url = f"rtsp://127.0.0.1:{stack.enter_context(silent_listener())}/publish"
        started = time.monotonic()
        code, lines = _upscale(str(clip), url, *SMALL, "--open-timeout", "1")
        elapsed = time.monotonic() - started
    assert code == 1
    assert lines == [
        f"vsr: error: publishing to {url} timed out: the RTSP server did not answer within 1 s (--open-timeout)"
    ]
    assert 1.0 <= elapsed < 2.5, elapsed  # the timeout, plus planning the run (about 0.2 s)


def test_publish_needs_libx264(clip: Path) -> None:
    url = f"rtsp://127.0.0.1:{_free_port()}/publish"
    code, lines = _upscale(str(clip), url, *SMALL, "--codec", "libx265")
    assert code == 2
    assert lines == ["vsr: error: RTSP output is H.264 from libx264; --codec libx265 cannot be published"]


@needs_server
def test_server_dropping_the_publish_is_an_output_error(tmp_path: Path) -> None:
    server = RtspServer(record=tmp_path / "recorded.mkv")  # a video-only publish
    sink = RtspSink(server.record_url, _spec())
    for i in range(5):
        sink.write_frame(_frame(i))
    server.kill()
    with pytest.raises(
        OutputError,
        match=r"^the RTSP server dropped the publish to rtsp://127\.0\.0\.1:\d+/publish after \d+ frames: ",
    ):
        for i in range(5, 500):
            sink.write_frame(_frame(i))
        sink.close()
    sink.abort()
    server.stop()


# -- HLS --------------------------------------------------------------------------------------


def test_hls_segments_each_play_alone_and_add_up_to_the_input(tmp_path: Path) -> None:
    # segments last at least 1 s (the playlist's target duration is whole seconds)
    clip = write_clip(tmp_path / "in.mp4", frames=70, audio=True)  # 2.8 s at 25 fps
    playlist = tmp_path / "hls" / "index.m3u8"
    playlist.parent.mkdir()
    code, lines = _upscale(str(clip), str(playlist), *SMALL, "--segment", "1s")
    assert code == 0, lines
    text = playlist.read_text()
    listed = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert listed == ["index-00000.ts", "index-00001.ts", "index-00002.ts"]
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    assert "#EXT-X-TARGETDURATION:1" in text
    counts = []
    for name in listed:
        with av.open(str(playlist.parent / name)) as segment:
            assert [s.type for s in segment.streams] == ["video", "audio"]
            first = next(segment.decode(video=0))
            assert first.key_frame  # each segment starts with its own keyframe
        counts.append(_decoded_frames(playlist.parent / name))
    assert counts == [25, 25, 20]
    assert sorted(p.name for p in playlist.parent.iterdir()) == [*listed, "index.m3u8"]  # no .tmp


def test_hls_overwrite_removes_the_earlier_runs_segments_and_nothing_else(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "in.mp4", frames=100)  # 4 s at 25 fps
    folder = tmp_path / "hls"
    folder.mkdir()
    playlist = folder / "index.m3u8"
    code, lines = _upscale(str(clip), str(playlist), *SMALL, "--segment", "1s")
    assert code == 0, lines
    assert sorted(p.name for p in folder.glob("index-*.ts")) == [f"index-{i:05d}.ts" for i in range(4)]
    (folder / "index-00004.ts.tmp").write_bytes(b"the segment a crash left unfinished")
    others = ["index-00003.ts.bak", "index-7.ts", "index.txt", "other-00004.ts", "other.m3u8"]
    for name in others:
        (folder / name).write_text("not the playlist's")

    run = tmp_path / "run.json"
    code, lines = _upscale(
        str(clip), str(playlist), *SMALL, "--segment", "2s", "--overwrite", "--json", str(run)
    )
    assert code == 0, lines
    listed = [line for line in playlist.read_text().splitlines() if line and not line.startswith("#")]
    assert listed == ["index-00000.ts", "index-00001.ts"]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*listed, "index.m3u8", *others])
    assert all((folder / name).read_text() == "not the playlist's" for name in others)
    assert [_decoded_frames(folder / name) for name in listed] == [50, 50]
    summary = json.loads(run.read_text())
    assert summary["segments"] == [str(folder / name) for name in listed]
    assert "replaced an earlier output: removed its playlist and 5 segment files" in summary["notes"]


def test_hls_playlist_lists_only_complete_segments_while_writing(tmp_path: Path) -> None:
    # The state a crash leaves: mid-way through the third segment, without close().
    playlist = tmp_path / "index.m3u8"
    sink = HlsSink(playlist, _spec(), segment_s=1.0)
    for i in range(60):  # 2.4 s at 25 fps
        sink.write_frame(_frame(i))
    listed = [line for line in playlist.read_text().splitlines() if line and not line.startswith("#")]
    assert listed == ["index-00000.ts", "index-00001.ts"]
    assert "#EXT-X-ENDLIST" not in playlist.read_text()
    assert [_decoded_frames(tmp_path / name) for name in listed] == [25, 25]
    assert not (tmp_path / "index-00002.ts").exists()  # the segment in progress is not yet a file
    sink.abort()


def test_live_hls_keeps_a_sliding_window_and_deletes_old_segments(tmp_path: Path) -> None:
    playlist = tmp_path / "index.m3u8"
    with HlsSink(playlist, _spec(), segment_s=1.0, live=True, live_list_size=2) as sink:
        for i in range(250):  # 10 s: 10 segments
            sink.write_frame(_frame(i))
    text = playlist.read_text()
    listed = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert listed == ["index-00008.ts", "index-00009.ts"]
    assert "#EXT-X-MEDIA-SEQUENCE:8" in text
    on_disk = sorted(p.name for p in tmp_path.glob("*.ts"))
    assert "index-00000.ts" not in on_disk and len(on_disk) <= 3  # the list plus one, FFmpeg's margin


@pytest.mark.parametrize("kind", ["file", "segments", "hls"])
def test_every_sink_finishes_once_and_refuses_writes_after(tmp_path: Path, kind: str) -> None:
    made = {
        "file": lambda: FileSink(tmp_path / "out.mp4", _spec()),
        "segments": lambda: SegmentSink(tmp_path / "out.mp4", _spec(), 1.0),
        "hls": lambda: HlsSink(tmp_path / "out.m3u8", _spec(), segment_s=1.0),
    }[kind]
    with made() as sink:
        for i in range(30):
            sink.write_frame(_frame(i))
    assert sink.frames_written == 30
    with pytest.raises(
        RuntimeError, match=f"^{type(sink).__name__} for {tmp_path}/out\\.(mp4|m3u8) is already closed$"
    ):
        sink.write_frame(_frame(30))
    finished = sorted(p.name for p in tmp_path.iterdir())  # 30 frames at 25 fps: two 1 s pieces
    if kind == "segments":  # timestamped names
        assert len(finished) == 2 and all(n.startswith("out-") and n.endswith(".mp4") for n in finished)
    else:
        assert finished == {"file": ["out.mp4"], "hls": ["out-00000.ts", "out-00001.ts", "out.m3u8"]}[kind]
    # an error inside the block aborts: what was written is kept under the in-progress name
    with pytest.raises(KeyError), made() as again:
        for i in range(10):
            again.write_frame(_frame(i))
        raise KeyError("stop")
    if kind == "file":
        assert _decoded_frames(tmp_path / "out.partial.mp4") == 10


# -- live audio -------------------------------------------------------------------------------


@needs_server
def test_live_rtsp_audio_is_recorded(clip: Path, tmp_path: Path) -> None:
    server = RtspServer(clip, audio=True)
    try:
        out = tmp_path / "live.mkv"
        code, lines = _upscale(server.url, str(out), *SMALL, "--reconnect-attempts", "0")
    finally:
        server.stop()
    assert code == 0, lines
    with av.open(str(out)) as container:
        assert [(s.type, s.codec_context.name) for s in container.streams] == [
            ("video", "h264"),
            ("audio", "aac"),
        ]
    audio = _packets(out, "audio")
    assert len(audio) > 20  # about 1 s of 44.1/48 kHz AAC: 43-47 packets
    assert all(b.pts > a.pts for a, b in itertools.pairwise(audio))


# -- helpers ----------------------------------------------------------------------------------


def _spec() -> VideoOutputSpec:
    return VideoOutputSpec(
        width=160,
        height=96,
        pix_fmt="yuv420p",
        time_base=Fraction(1, 25),
        frame_rate=Fraction(25),
        color=ColorDescription(matrix=ColorMatrix.BT709, range=ColorRange.LIMITED),
        preset="ultrafast",
    )


def _frame(index: int) -> Frame:
    return Frame(
        index=index,
        pts=index,
        time_base=Fraction(1, 25),
        pix_fmt="yuv420p",
        width=160,
        height=96,
        planes=moving_planes("yuv420p", 160, 96, index),
        color=ColorDescription(),
    )


def test_the_plan_shows_the_preset_a_publish_encodes_with(clip: Path) -> None:
    url = f"rtsp://127.0.0.1:{_free_port()}/publish"  # nothing listens: the run stops after the plan
    code, lines = _upscale(str(clip), url, "-m", "bicubic", "--size", "216x144")
    assert code == 1
    assert "encoder:   libx264 crf=default preset=veryfast" in lines  # not "preset=default"
    code, lines = _upscale(str(clip), url, "-m", "bicubic", "--size", "216x144", "--preset", "fast")
    assert "encoder:   libx264 crf=default preset=fast" in lines
