"""Live inputs against a real RTSP server: reconnects, timeouts, drops, bounded latency, recording.

(The parts that need no server are in ``test_live_parts.py``.) The server is GStreamer's gst-rtsp-server (``tools/rtsp_server.py``, run by ``tests/rtsp_server.py``)
serving a 4 s, 25 fps, 320x240 H.264 clip on 127.0.0.1; each session plays it once from its
start. The model is bicubic x2 everywhere, so the tests time the pipeline, not a network.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

import vsr
from vsr.cli import app
from vsr.media.live import LiveSource, ReconnectPolicy
from vsr.media.live_input import LiveConnectOptions
from vsr.pipeline.runner import Pipeline
from vsr.pipeline.stats import RunSummary

from clips import write_clip
from in_thread import InThread, SlowBackend
from rtsp_server import RtspServer, rtsp_unavailable

CLIP_FRAMES = 100  # 4 s at 25 fps, a keyframe every second
FAST = dict(model="bicubic", scale=2, preset="ultrafast", precision="fp32")
needs_server = pytest.mark.skipif(rtsp_unavailable() is not None, reason=str(rtsp_unavailable()))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("live")
    return write_clip(folder / "clip.mp4", width=320, height=240, frames=CLIP_FRAMES, options={"g": "25"})


@pytest.fixture
def server(clip: Path) -> Iterator[RtspServer]:
    started = RtspServer(clip)
    try:
        yield started
    finally:
        started.stop()


def _video(path: Path) -> tuple[list[Fraction], tuple[int, int]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(c.streams.video[0]))
    return [Fraction(f.pts) * f.time_base for f in frames], (frames[0].width, frames[0].height)


def _increasing(times: list[Fraction]) -> bool:
    return all(b > a for a, b in itertools.pairwise(times))


class _Run(InThread[RunSummary]):
    """`Pipeline.run` on a thread, so the test can act on the server meanwhile."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        super().__init__(pipeline.run)

    def summary(self, timeout_s: float = 30.0) -> RunSummary:
        return self.result(timeout_s)


# -- without a server -------------------------------------------------------------------------


def test_segmented_recording_gives_files_that_play_on_their_own(clip: Path, tmp_path: Path) -> None:
    summary = vsr.upscale(clip, tmp_path / "rec.mp4", segment=1.0, **FAST)
    segments = [Path(s) for s in summary.segments]
    assert len(segments) == 4 and all(s.name.startswith("rec-") and s.suffix == ".mp4" for s in segments)
    assert not (tmp_path / "rec.mp4").exists() and not list(tmp_path.glob("*.partial.*"))
    counts = []
    for segment in segments:
        times, size = _video(segment)
        assert size == (640, 480) and times[0] == 0 and _increasing(times)
        counts.append(len(times))
    assert counts == [25, 25, 25, 25]  # cut on the output timeline: 1 s of video each


def test_live_mode_on_a_file_replays_it_at_its_own_frame_rate(clip: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    summary = vsr.upscale(clip, tmp_path / "out.mp4", live=True, **FAST)
    # paced like a camera: 4 s of video takes about 4 s, instead of the second it decodes in
    assert time.monotonic() - started > 3.5
    live = summary.live
    assert live is not None and live.live_mode and live.ended_by == "end of file"
    assert summary.frames_in == CLIP_FRAMES == summary.frames_out + live.frames_dropped
    assert live.latency.frames == summary.frames_out


def test_an_unreachable_url_fails_in_one_line_after_its_attempts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = CliRunner().invoke(
        app,
        [
            *("upscale", f"rtsp://127.0.0.1:{port}/cam", str(tmp_path / "out.mp4"), "-m", "bicubic"),
            *("--reconnect-attempts", "2", "--reconnect-interval", "0.05"),
        ],
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"vsr: error: cannot connect to rtsp://127.0.0.1:{port}/cam"
    )
    assert "after 3 attempts" in lines[0] and "refused" in lines[0].lower()
    assert time.monotonic() - started < 10 and not list(tmp_path.iterdir())


# -- against the server -----------------------------------------------------------------------


@needs_server
def test_a_stream_is_upscaled_with_every_frame_and_increasing_timestamps(
    server: RtspServer, tmp_path: Path
) -> None:
    out = tmp_path / "out.mkv"
    summary = vsr.upscale(server.url, out, reconnect_attempts=0, **FAST)
    times, size = _video(out)
    assert size == (640, 480) and _increasing(times)
    # the short stream analysis keeps the first keyframe: every frame the server sent arrives
    assert len(times) == summary.frames_out == CLIP_FRAMES
    assert times[-1] - times[0] == Fraction(CLIP_FRAMES - 1, 25)
    live = summary.live
    assert live is not None and live.connections == 1 and live.frames_dropped == 0
    assert "reconnecting is off" in live.ended_by
    # still-frame reuse is on by default for a live input: the clip's frames all differ, none reused
    assert f"still-frame reuse: 0 of {CLIP_FRAMES} frames took the previous output (0.0%)" in summary.notes


@needs_server
def test_the_short_analysis_opens_at_once_and_starts_at_the_first_frame(
    server: RtspServer, clip: Path
) -> None:
    started = time.monotonic()
    source = LiveSource(server.url, reconnect=ReconnectPolicy(attempts=0))
    opened = time.monotonic() - started
    with source, av.open(str(clip)) as reference:
        first = next(source.items())
        expected = next(reference.decode(video=0)).to_ndarray()[:240]  # the Y plane of yuv420p
    # FFmpeg's default analysis took 1.1 s here before the first frame; probesize=32 takes ~0.06 s
    assert opened < 0.6, opened
    assert np.abs(first.planes[0].astype(int) - expected.astype(int)).mean() < 1.0


def _udp_sockets_of_this_process() -> int:
    inodes = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        if os.path.exists(table):
            with open(table) as f:
                inodes |= {line.split()[9] for line in list(f)[1:]}
    mine = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        mine += target.startswith("socket:[") and target[8:-1] in inodes
    return mine


@needs_server
@pytest.mark.skipif(not os.path.exists("/proc/net/udp"), reason="needs Linux /proc to count sockets")
@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_the_rtsp_transport_option_is_really_used(server: RtspServer, transport: str) -> None:
    before = _udp_sockets_of_this_process()
    with LiveSource(server.url, connect=LiveConnectOptions(transport=transport)) as source:  # type: ignore[arg-type]
        frames = source.items()  # kept: a dropped generator closes its connection
        next(frames)
        opened = _udp_sockets_of_this_process() - before
    assert (opened >= 2) if transport == "udp" else (opened == 0)  # RTP + RTCP sockets over UDP


@needs_server
@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_a_frozen_server_is_detected_within_the_read_timeout(server: RtspServer, transport: str) -> None:
    read_timeout = 1.0
    source = LiveSource(
        server.url,
        connect=LiveConnectOptions(transport=transport, read_timeout_s=read_timeout),  # type: ignore[arg-type]
        reconnect=ReconnectPolicy(attempts=0),
    )
    frozen_at = 0.0
    with source:
        for n, _ in enumerate(source.items()):
            if n == 10:
                server.freeze()
                frozen_at = time.monotonic()
        waited = time.monotonic() - frozen_at
    server.thaw()
    assert 0.4 < waited <= read_timeout + 0.3, waited  # not at once, and within its bound
    assert "read timeout" in (source.end_reason or "")
    assert source.events.counts["disconnected"] == 1


def _kill_and_restart(server: RtspServer, run: _Run, times: int) -> None:
    pipeline = run.pipeline
    for cycle in range(times):
        target = pipeline.frames_in + 12
        run.wait_for(lambda t=target: pipeline.frames_in >= t, f"frames before kill {cycle + 1}")
        server.kill()
        server.start()
        reconnects = cycle + 1
        run.wait_for(
            lambda r=reconnects: pipeline.events.counts["reconnected"] >= r, f"reconnect {cycle + 1}"
        )


def _check_reconnects(summary: RunSummary, out: Path, times: int) -> None:
    live = summary.live
    assert live is not None
    assert live.interrupted and live.connections == times + 1
    assert live.disconnects == times  # every disconnect reported ...
    kinds = [e.kind for e in live.events if e.kind in ("connected", "disconnected", "reconnected")]
    assert kinds == ["connected"] + ["disconnected", "reconnected"] * times  # ... in order
    walls = [e.wall_time for e in live.events]
    assert walls == sorted(walls)
    assert out.exists() and not list(out.parent.glob("*.partial.*"))  # finished and renamed
    out_times, size = _video(out)
    assert size == (640, 480) and _increasing(out_times)
    assert len(out_times) == summary.frames_out == summary.frames_in - live.frames_dropped


def _reconnecting_run(server: RtspServer, out: Path) -> _Run:
    options = vsr.UpscaleOptions(reconnect_attempts=5, reconnect_interval=0.2, read_timeout=2.0, **FAST)
    return _Run(Pipeline(server.url, out, options))


@needs_server
def test_a_server_killed_and_restarted_three_times_is_reconnected_every_time(
    server: RtspServer, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    run = _reconnecting_run(server, out)
    _kill_and_restart(server, run, 3)
    run.pipeline.cancel()  # Ctrl-C: the recording is finished normally
    _check_reconnects(run.summary(), out, 3)


@pytest.mark.slow
@needs_server
def test_a_server_killed_and_restarted_ten_times_is_reconnected_every_time(
    server: RtspServer, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    run = _reconnecting_run(server, out)
    _kill_and_restart(server, run, 10)
    run.pipeline.cancel()
    _check_reconnects(run.summary(), out, 10)


@needs_server
def test_a_camera_back_at_another_resolution_keeps_the_output_size(
    server: RtspServer, tmp_path: Path
) -> None:
    small = write_clip(tmp_path / "small.mp4", width=240, height=176, frames=50, options={"g": "25"})
    out = tmp_path / "out.mp4"
    run = _reconnecting_run(server, out)
    run.wait_for(lambda: run.pipeline.frames_in >= 12, "frames of the first connection")
    server.kill()
    server.args = [str(small)]  # the same URL, now 240x176
    server.start()
    run.wait_for(lambda: run.pipeline.events.counts["reconnected"] >= 1, "the reconnect")
    run.wait_for(lambda: run.pipeline.frames_in >= 30, "frames of the second connection")
    run.pipeline.cancel()
    summary = run.summary()
    assert summary.live is not None
    resized = [e for e in summary.live.events if e.kind == "resized"]
    assert len(resized) == 1 and "240x176" in resized[0].detail and "320x240" in resized[0].detail
    times, size = _video(out)
    assert size == (640, 480) and _increasing(times) and len(times) == summary.frames_out >= 30


@needs_server
def test_a_slow_model_makes_live_mode_drop_frames_and_keep_latency_bounded(
    server: RtspServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vsr.pipeline.plan as runner  # the plan makes the run's backend

    real = runner.create_backend
    monkeypatch.setattr(runner, "create_backend", lambda *a, **k: SlowBackend(real(*a, **k), 0.12))
    out = tmp_path / "out.mp4"
    options = vsr.UpscaleOptions(reconnect_attempts=0, max_latency=0.3, queue_size=4, **FAST)
    summary = vsr.upscale(server.url, out, options)
    live = summary.live
    assert live is not None and live.live_mode
    # 25 fps in, at most ~8 fps through the model: most frames must go, and every one is counted
    assert live.frames_dropped >= CLIP_FRAMES // 2
    assert summary.frames_in == CLIP_FRAMES == summary.frames_out + live.frames_dropped
    assert live.dropped_queue_full + live.dropped_late == live.frames_dropped
    # waiting is bounded by max_latency; the model's own 0.12 s and the encoder come on top. The
    # maximum gets slack for a loaded machine (one slow encode); a queue that kept every frame
    # would reach 100 frames / 8 fps = 12 s.
    assert live.latency.p95_ms < (0.3 + 0.12 + 0.3) * 1000, live.latency
    assert live.latency.max_ms < 1500, live.latency
    assert any(e.kind == "dropped" for e in live.events)
    times, _ = _video(out)
    assert len(times) == summary.frames_out and _increasing(times)


@needs_server
def test_sigterm_ends_a_live_run_with_130_and_a_finished_file(server: RtspServer, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    vsr_cli = Path(sys.executable).with_name("vsr")
    command = [str(vsr_cli), "upscale", server.url, str(out), "-m", "bicubic", "--preset", "ultrafast"]
    process = subprocess.Popen(
        [*command, "--json", str(tmp_path / "run.json")], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while (
        not list(tmp_path.glob("out.partial.mp4")) or os.path.getsize(tmp_path / "out.partial.mp4") < 20_000
    ):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()  # type: ignore[union-attr]
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    times, size = _video(out)
    assert size == (640, 480) and len(times) > 0 and _increasing(times)
    assert not (tmp_path / "out.partial.mp4").exists()
    import json

    report = json.loads((tmp_path / "run.json").read_text())["live"]
    assert report["ended_by"] == "interrupted" and report["connections"] == 1


@needs_server
def test_the_cameras_audio_goes_on_after_a_reconnect(tmp_path: Path) -> None:
    # the first connection's audio stream was compared after that connection was closed (freed
    # memory): every reconnect dropped the audio, "differs from the first's"
    clip = write_clip(tmp_path / "av.mp4", width=160, height=96, frames=50, audio=True, options={"g": "25"})
    server = RtspServer(clip, audio=True)
    try:
        out = tmp_path / "out.mkv"
        run = _reconnecting_run(server, out)
        pipeline = run.pipeline
        run.wait_for(
            lambda: pipeline.events.counts["reconnected"] >= 1 and pipeline.frames_in >= 70, "a replay"
        )
        pipeline.cancel()
        summary = run.summary()
    finally:
        server.stop()
    assert summary.live is not None
    assert not [e for e in summary.live.events if e.kind == "audio_dropped"]
    with av.open(str(out)) as c:
        audio_end = max(float(p.pts * p.time_base) for p in c.demux(c.streams.audio[0]) if p.size)
    assert audio_end > 2.5  # the first play's audio ends at 2 s; the replay's goes on past it


@needs_server
def test_a_camera_lost_for_good_mid_run_exits_3_with_its_recording(
    server: RtspServer, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsr", "upscale", server.url, str(out), "-m", "bicubic", "-s", "2",
         "--preset", "ultrafast", "-q", "--reconnect-attempts", "1", "--reconnect-interval", "0.2"],
        stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    partial = out.with_name("out.partial.mp4")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not partial.exists() or partial.stat().st_size < 20_000):
        time.sleep(0.1)
    server.kill()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, stderr  # not 0: a supervisor must see that the camera was lost
    assert "Traceback" not in stderr and "gave_up: cannot connect to" in stderr
    assert out.exists() and len(_video(out)[0]) > 0  # what was recorded is finished and kept
