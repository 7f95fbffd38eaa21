"""Live inputs other than RTSP: HTTP, RTMP and V4L2 cameras, read through the same `LiveSource`.

The servers (``tests/stream_servers.py``) run on 127.0.0.1: Python's http.server sending a clip
at its own pace (or stalling, or never answering) and FFmpeg's own RTMP server playing a clip
once. The clips are 2 s of 320x240 H.264 at 25 fps with B-frames (their last frames leave the
decoder only when it is flushed) and AAC at 48 kHz. The model is bicubic x2, many times faster
than the input, so a live run has no reason to drop a frame: every frame sent must be written.
Each run's ``--json`` summary says whether the input was taken as live (no ``--live`` given).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from vsr.cli import app
from vsr.media.frame import Frame
from vsr.media.live import LiveSource, ReconnectPolicy

from clips import write_clip
from stream_servers import HttpClipServer, RtmpServer, silent_listener

FRAMES = 50  # 2 s at 25 fps
RUN = ("-m", "bicubic", "-s", "2", "--preset", "ultrafast", "-q", "--reconnect-attempts", "0")
needs_proc = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc/net/tcp")


def _clip(folder: Path, suffix: str, frames: int = FRAMES) -> Path:
    return write_clip(
        folder / f"clip{suffix}",
        width=320,
        height=240,
        frames=frames,
        audio=True,
        options={"g": "25", "bf": "2"},
        # progressive MP4: the moov first, as a server that streams MP4 sends it
        container_options={"movflags": "+faststart"} if suffix == ".mp4" else {},
    )


def _upscale(*args: str) -> tuple[int, list[str], float]:
    started = time.monotonic()
    result = CliRunner().invoke(app, ["upscale", *args])
    return result.exit_code, result.output.strip().splitlines(), time.monotonic() - started


def _summary(path: Path) -> dict:
    return json.loads(path.read_text())


def _video(path: Path) -> tuple[list[Fraction], tuple[int, int]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [Fraction(f.pts) * f.time_base for f in frames], (frames[0].width, frames[0].height)


def _audio(path: Path) -> tuple[int, int]:
    """(sample rate, packets) of the first audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return stream.codec_context.sample_rate, sum(1 for p in container.demux(stream) if p.size)


def _assert_every_frame(out: Path, summary: dict, frames: int = FRAMES) -> None:
    live = summary["live"]
    assert live["live_mode"] is True  # a network input is live without --live
    assert live["connections"] == 1 and live["frames_dropped"] == 0
    assert summary["frames_in"] == summary["frames_out"] == frames
    assert summary["input_size"] == [320, 240] and summary["output_size"] == [640, 480]
    times, size = _video(out)
    assert size == (640, 480)
    assert times == [Fraction(i, 25) for i in range(frames)]  # every frame, on the source's clock


# -- HTTP -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".ts"])
def test_an_http_stream_gives_every_frame_at_twice_the_size(tmp_path: Path, suffix: str) -> None:
    out, run = tmp_path / "out.mp4", tmp_path / "run.json"
    with HttpClipServer(_clip(tmp_path, suffix), seconds=2) as server:
        code, lines, elapsed = _upscale(server.url, str(out), *RUN, "--json", str(run))
    assert code == 0, lines
    summary = _summary(run)
    assert summary["input"] == server.url and server.requests == 1
    _assert_every_frame(out, summary)
    assert summary["live"]["ended_by"] == "the stream ended (the stream ended); reconnecting is off"
    rate, packets = _audio(out)
    assert rate == 48000 and packets >= 90  # 2 s of AAC at 48 kHz: 94 packets (93.75/s)
    assert elapsed < 4.0  # the stream's 2 s, not a long analysis first


def test_an_http_server_that_never_answers_fails_within_the_open_timeout(tmp_path: Path) -> None:
    with silent_listener() as port:
        url = f"http://127.0.0.1:{port}/clip.mp4"
        code, lines, elapsed = _upscale(url, str(tmp_path / "out.mp4"), *RUN, "--open-timeout", "1")
    assert code == 1
    assert lines == [
        f"vsr: error: cannot connect to {url} after 1 attempt: no answer within 1 s (--open-timeout)"
    ]
    assert 1.0 <= elapsed < 1.8, elapsed  # measured: 1.07 s
    assert list(tmp_path.iterdir()) == []


def test_an_rtsp_server_that_never_answers_is_one_line_naming_the_timeout(tmp_path: Path) -> None:
    # FFmpeg's RTSP client ends such a wait in "Invalid data found": the time says what happened.
    # A subprocess, so that log lines (one per failed attempt before) count too.
    import subprocess
    import sys

    with silent_listener() as port:
        url = f"rtsp://127.0.0.1:{port}/stream"
        proc = subprocess.run(
            [sys.executable, "-m", "vsr", "upscale", url, str(tmp_path / "out.mp4"), *RUN, "--open-timeout", "1"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"vsr: error: cannot connect to {url} after 1 attempt: no answer within 1 s (--open-timeout)"
    ]


def test_an_http_stream_that_stalls_ends_after_the_read_timeout(tmp_path: Path) -> None:
    clip = _clip(tmp_path, ".mp4")
    out, run = tmp_path / "out.mp4", tmp_path / "run.json"
    with HttpClipServer(clip, seconds=2, stall_after=clip.stat().st_size // 2) as server:
        code, lines, _ = _upscale(server.url, str(out), *RUN, "--read-timeout", "1", "--json", str(run))
        assert server.stalled_at is not None
        detected = time.monotonic() - server.stalled_at
    assert code == 0, lines
    # The whole read timeout (not half of it, as an RTSP read gets), plus finishing the file;
    # the last read may have begun up to a chunk's interval (20 ms) before the stall.
    assert 0.9 <= detected < 1.8, detected  # measured: 1.01 s
    summary = _summary(run)
    assert summary["live"]["ended_by"] == (
        "the stream ended (no data for 1 s (read timeout)); reconnecting is off"
    )
    times, _ = _video(out)
    assert 10 < len(times) == summary["frames_out"] == summary["frames_in"] < FRAMES
    assert all(b > a for a, b in itertools.pairwise(times))


# -- RTMP -------------------------------------------------------------------------------------


@needs_proc
def test_an_rtmp_stream_gives_every_frame_at_twice_the_size(tmp_path: Path) -> None:
    out, run = tmp_path / "out.mp4", tmp_path / "run.json"
    with RtmpServer(_clip(tmp_path, ".mp4")) as server:
        code, lines, elapsed = _upscale(server.url, str(out), *RUN, "--json", str(run))
        sent_video, sent_audio = server.result()
    assert code == 0, lines
    assert sent_video == FRAMES
    summary = _summary(run)
    assert summary["input"] == server.url
    # the last two frames come from flushing the decoder: the stream ends on an I/O error
    _assert_every_frame(out, summary)
    assert summary["live"]["ended_by"] == "the stream ended (Input/output error); reconnecting is off"
    # 48 kHz: the FLV tag header can only say 44.1 kHz; the short analysis reads the AAC config
    rate, packets = _audio(out)
    assert rate == 48000 and sent_audio - 3 <= packets <= sent_audio  # audio before frame 1: dropped
    assert elapsed < 4.0


@needs_proc
def test_a_frozen_rtmp_server_ends_the_stream_after_the_read_timeout(tmp_path: Path) -> None:
    out, run = tmp_path / "out.mp4", tmp_path / "run.json"
    with RtmpServer(_clip(tmp_path, ".mp4", frames=250)) as server:
        frozen: list[float] = []

        def freeze() -> None:
            os.kill(server.pid, signal.SIGSTOP)
            frozen.append(time.monotonic())

        timer = threading.Timer(1.0, freeze)  # the CLI must run on the main thread (signals)
        timer.start()
        try:
            code, lines, _ = _upscale(server.url, str(out), *RUN, "--read-timeout", "1", "--json", str(run))
            detected = time.monotonic() - frozen[0]
        finally:
            timer.join()
            os.kill(server.pid, signal.SIGCONT)
    assert code == 0, lines
    # the last read may have begun before the freeze, waiting for the next frame (40 ms apart)
    assert 0.9 <= detected < 1.8, detected  # measured: 1.03 s
    summary = _summary(run)
    assert summary["live"]["ended_by"] == (
        "the stream ended (no data for 1 s (read timeout)); reconnecting is off"
    )
    assert 10 < summary["frames_out"] == summary["frames_in"] == len(_video(out)[0]) < 50


# -- V4L2 -------------------------------------------------------------------------------------

CAMERAS = sorted(str(p) for p in Path("/dev").glob("video[0-9]*"))


@pytest.mark.skipif(not CAMERAS, reason="no /dev/video* device on this machine: V4L2 capture is untested")
def test_a_v4l2_camera_gives_frames_with_increasing_timestamps() -> None:
    with LiveSource(CAMERAS[0], reconnect=ReconnectPolicy(attempts=0)) as source:
        assert source.kind == "camera" and source.info.container_format == "video4linux2,v4l2"
        frames = list(itertools.islice((f for f in source.items() if isinstance(f, Frame)), 10))
    assert len(frames) == 10 and all(f.width > 0 and f.height > 0 for f in frames)
    assert all(b.pts > a.pts for a, b in itertools.pairwise(frames))


def test_a_missing_camera_is_one_line_and_exit_1(tmp_path: Path) -> None:
    if Path("/dev/video9").exists():
        pytest.skip("/dev/video9 exists here")
    # the default reconnect policy (10 attempts): a device that is not there is not retried
    code, lines, elapsed = _upscale("/dev/video9", str(tmp_path / "out.mp4"), *RUN[:-2])
    assert code == 1
    assert lines == ["vsr: error: camera /dev/video9 does not exist (no such V4L2 device on this machine)"]
    assert elapsed < 1.5 and list(tmp_path.iterdir()) == []
