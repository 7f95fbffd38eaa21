"""`vsr watch`: several feeds through one model, batched across feeds, each to its own output.

Files stand in for cameras where a test needs exact frame counts; the RTSP test uses the
GStreamer server of ``test_live.py``. The model is bicubic x2; where a test needs the Restore
thread to be the bottleneck (so that frames of several feeds wait together), its backend is
slowed down by a fixed delay per call.
"""

from __future__ import annotations

import itertools
import json
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

import vsr
import vsr.pipeline.watch as watch_module
from vsr.cli import app
from vsr.errors import OutputError
from vsr.media import FileSink, Frame
from vsr.pipeline.watch import WatchRun
from vsr.pipeline.watch_config import load_watch_config

from clips import vfr_clip, write_clip
from in_thread import InThread, SlowBackend
from rtsp_server import RtspServer, rtsp_unavailable
from stream_servers import HttpClipServer

RUN = 'model = "bicubic"\nscale = 2\nprecision = "fp32"\npreset = "ultrafast"\n'
needs_server = pytest.mark.skipif(rtsp_unavailable() is not None, reason=str(rtsp_unavailable()))


def _camera(name: str, url: str | Path, output: str | Path, **extra: object) -> str:
    table = {"name": name, "url": str(url), "output": str(output), **extra}
    return "[[camera]]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items())


def _config(folder: Path, *cameras: str, run: str = RUN, batch: int = 4) -> Path:
    path = folder / "cameras.toml"
    path.write_text(f"{run}batch = {batch}\n" + "".join(cameras))
    return path


def _frames(path: Path) -> tuple[list[Fraction], list[np.ndarray]]:
    """Presentation times (s) and Y planes of a video's frames."""
    with av.open(str(path)) as c:
        frames = list(c.decode(c.streams.video[0]))
    return [Fraction(f.pts) * f.time_base for f in frames], [f.to_ndarray(format="gray") for f in frames]


def _inverted_clip(path: Path, frames: int) -> Path:
    """A 160x96 clip unlike `write_clip`'s (a negative, moving the other way): a frame that went
    to the wrong feed's output cannot pass for the right one."""
    rng = np.random.default_rng(7)
    texture = rng.integers(30, 220, size=(96, 160), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "bframes": "0"})
        video.width, video.height, video.pix_fmt = 160, 96, "yuv420p"
        for index in range(frames):
            luma = 255 - np.roll(texture, -3 * index, axis=1)
            frame = av.VideoFrame.from_ndarray(np.dstack([luma] * 3), format="rgb24").reformat(
                format="yuv420p"
            )
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


@pytest.fixture
def slow_model(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    def slow(delay_s: float) -> None:
        real = watch_module.create_backend
        monkeypatch.setattr(
            watch_module, "create_backend", lambda *a, **k: SlowBackend(real(*a, **k), delay_s)
        )

    return slow


# -- several files ----------------------------------------------------------------------------


def test_feeds_of_different_lengths_keep_every_frame_and_their_own_timestamps(
    tmp_path: Path, slow_model: Callable[[float], None]
) -> None:
    slow_model(0.02)  # the model is the bottleneck: frames of several feeds wait for each call
    negative = _inverted_clip(tmp_path / "negative.mp4", 37)
    vfr = vfr_clip(tmp_path)  # 160x96 too, irregular pts in 1/90000
    small = write_clip(tmp_path / "small.mp4", width=128, height=64, frames=9)
    config = _config(
        tmp_path,
        _camera("negative", "negative.mp4", "out/negative.mp4"),  # relative to the config's folder
        _camera("vfr", vfr, tmp_path / "out" / "vfr.mp4"),
        _camera("small", small, tmp_path / "out" / "small.mp4", segment=0.2),
    )
    (tmp_path / "out").mkdir()
    summary = WatchRun(load_watch_config(config)).run()
    feeds = {f.name: f for f in summary.feeds}
    # frames of one size share model calls across feeds; another size gets calls of its own
    assert summary.cross_feed_calls > 0
    assert summary.frames_restored == 37 + 20 + 9 and summary.model_calls < summary.frames_restored
    for name, source, out in (("negative", negative, "negative.mp4"), ("vfr", vfr, "vfr.mp4")):
        report = feeds[name]
        assert report.completed and report.error is None and report.ended_by == "end of file"
        times, planes = _frames(tmp_path / "out" / out)
        source_times, _ = _frames(source)
        assert times == source_times  # every frame, at exactly its input time
        assert report.frames_in == report.frames_out == len(source_times)
        assert planes[0].shape == (192, 320)
        # each output is what `vsr upscale` makes of its input alone: no frame of another feed
        alone = vsr.upscale(
            source, tmp_path / f"alone-{out}", model="bicubic", scale=2, precision="fp32", preset="ultrafast"
        )
        alone_times, alone_planes = _frames(Path(alone.output))
        assert alone_times == times
        for plane, reference in zip(planes, alone_planes, strict=True):
            assert np.abs(plane.astype(int) - reference).mean() < 1.0
    small_report = feeds["small"]
    segments = [Path(s) for s in small_report.segments]
    counts = [len(_frames(s)[0]) for s in segments]
    assert counts == [5, 4] and small_report.frames_out == 9  # 0.2 s segments of a 25 fps clip
    assert not list((tmp_path / "out").glob("*.partial.*"))


def test_a_feed_whose_output_fails_ends_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow_model: Callable[[float], None]
) -> None:
    slow_model(0.01)

    class FailingSink(FileSink):
        def write_frame(self, frame: object) -> None:
            if self.path.name == "bad.mp4" and self.frames_written == 5:
                raise OutputError(f"disk full while writing {self.partial_path} after 5 frames")
            super().write_frame(frame)  # type: ignore[arg-type]

    monkeypatch.setattr(watch_module, "FileSink", FailingSink)
    good = write_clip(tmp_path / "good.mp4", frames=40)
    config = _config(
        tmp_path, _camera("bad", good, tmp_path / "bad.mp4"), _camera("good", good, tmp_path / "good-out.mp4")
    )
    result = CliRunner().invoke(app, ["watch", str(config), "--json", str(tmp_path / "run.json")])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1] == (  # one line per failed feed, after the summary
        f"vsr: error: camera 'bad': disk full while writing {tmp_path / 'bad.partial.mp4'} after 5 frames"
    )
    report = {f["name"]: f for f in json.loads((tmp_path / "run.json").read_text())["feeds"]}
    assert report["good"]["completed"] and report["good"]["frames_out"] == 40
    assert len(_frames(tmp_path / "good-out.mp4")[0]) == 40
    assert not report["bad"]["completed"] and report["bad"]["ended_by"].startswith("failed: disk full")
    assert report["bad"]["output"] == str(tmp_path / "bad.partial.mp4")  # kept, playable up to there
    assert len(_frames(tmp_path / "bad.partial.mp4")[0]) == 5


def test_cancel_finishes_every_output(tmp_path: Path, slow_model: Callable[[float], None]) -> None:
    slow_model(0.03)
    clip = write_clip(tmp_path / "clip.mp4", frames=200)
    config = _config(
        tmp_path, _camera("a", clip, tmp_path / "a.mp4"), _camera("b", clip, tmp_path / "b.mkv"), batch=2
    )
    run = WatchRun(load_watch_config(config))
    running = InThread(run.run)
    running.wait_for(lambda: all(f.frames_out >= 5 for f in run.feeds), "frames of both feeds")
    run.cancel()  # Ctrl-C
    summary = running.result(60)
    assert summary.interrupted
    for feed in summary.feeds:
        assert feed.completed and feed.ended_by == "interrupted"
        assert 5 <= feed.frames_out == feed.frames_in < 200  # what was read is written, no more
        times, _ = _frames(Path(str(feed.output)))
        assert times == [Fraction(n, 25) for n in range(feed.frames_out)]
    assert not list(tmp_path.glob("*.partial.*"))


def test_sigterm_finishes_every_output_with_130(tmp_path: Path) -> None:
    # two live feeds paced at 25 fps (a file would be read as fast as the cores go and could end
    # before the signal): 40 s of stream each, stopped after a second or so
    clip = write_clip(tmp_path / "clip.ts", frames=1000)
    with HttpClipServer(clip, seconds=40) as first, HttpClipServer(clip, seconds=40) as second:
        config = _config(
            tmp_path,
            _camera("a", first.url, tmp_path / "a.mp4"),
            _camera("b", second.url, tmp_path / "b.mkv"),
            batch=2,
        )
        vsr_cli = Path(sys.executable).with_name("vsr")
        command = [str(vsr_cli), "watch", str(config), "--json", str(tmp_path / "run.json")]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        partials = [tmp_path / "a.partial.mp4", tmp_path / "b.partial.mkv"]
        deadline = time.monotonic() + 60
        while not all(p.exists() and p.stat().st_size > 20_000 for p in partials):
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["interrupted"]
    for feed, out in zip(report["feeds"], ("a.mp4", "b.mkv"), strict=True):
        assert (
            feed["completed"] and feed["ended_by"] == "interrupted" and feed["output"] == str(tmp_path / out)
        )
        times, _ = _frames(tmp_path / out)
        # every frame read was written or dropped (live mode, counted), and the stream was cut short
        assert 0 < len(times) == feed["frames_out"] == feed["frames_in"] - feed["frames_dropped"]
        assert feed["frames_in"] < 900
    assert not list(tmp_path.glob("*.partial.*"))


def test_the_json_report_has_every_feed_and_the_cross_feed_calls(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=12)
    config = _config(
        tmp_path, _camera("a", clip, tmp_path / "a.mp4"), _camera("b", clip, tmp_path / "b.mp4"), batch=2
    )
    result = CliRunner().invoke(app, ["watch", str(config), "--json", "-", "--quiet"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [f["name"] for f in data["feeds"]] == ["a", "b"]
    assert all(f["frames_out"] == 12 and f["ended_by"] == "end of file" for f in data["feeds"])
    assert data["frames_restored"] == 24 and 0 <= data["cross_feed_calls"] <= data["model_calls"] <= 24
    assert set(data["restore_steps"]) == {"upload", "model", "download"}
    assert data["feeds"][0]["latency"]["frames"] == 12


# -- the optional Restore steps, per camera ---------------------------------------------------


def _still_clip(path: Path, frames: int) -> Path:
    """``frames`` copies of one 160x96 picture, lossless (H.264 qp 0): every frame decodes the same."""
    rng = np.random.default_rng(3)
    picture = rng.integers(40, 200, size=(96, 160, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"qp": "0", "preset": "ultrafast", "bframes": "0"})
        video.width, video.height, video.pix_fmt = 160, 96, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def _alone(source: Path, output: Path, **steps: object) -> Path:
    """What `vsr upscale` makes of ``source`` alone with the same model, precision and encoder."""
    summary = vsr.upscale(
        source, output, model="bicubic", scale=2, precision="fp32", preset="ultrafast", **steps
    )
    return Path(summary.output)


def _largest_difference(a: Path, b: Path) -> int:
    """The largest |difference| of Y between two videos' frames; they must have the same pts."""
    (times_a, planes_a), (times_b, planes_b) = _frames(a), _frames(b)
    assert times_a == times_b
    return max(int(np.abs(x.astype(int) - y).max()) for x, y in zip(planes_a, planes_b, strict=True))


def test_still_frames_reuse_their_own_feeds_output(
    tmp_path: Path, slow_model: Callable[[float], None]
) -> None:
    slow_model(0.02)
    still = _still_clip(tmp_path / "still.mp4", 12)
    moving = write_clip(tmp_path / "moving.mp4", frames=12)  # every frame differs from the one before
    config = _config(
        tmp_path,
        _camera("still", still, "still-out.mp4"),
        _camera("moving", moving, "moving-out.mp4"),
        run=RUN + "reuse_still = true\n",
    )
    result = CliRunner().invoke(app, ["watch", str(config), "--json", str(tmp_path / "run.json")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "run.json").read_text())
    feeds = {f["name"]: f for f in data["feeds"]}
    assert (feeds["still"]["frames_reused"], feeds["moving"]["frames_reused"]) == (11, 0)
    assert feeds["still"]["frames_out"] == feeds["moving"]["frames_out"] == 12
    assert "still-frame reuse: 11 of 12 frames took the previous output (91.7%)" in feeds["still"]["notes"]
    assert data["frames_restored"] == 1 + 12  # the model ran the still feed's first frame only
    assert list(data["restore_steps"]) == ["upload", "analyse", "model", "download"]
    for name, source in (("still", still), ("moving", moving)):
        times, planes = _frames(tmp_path / f"{name}-out.mp4")
        assert times == [Fraction(n, 25) for n in range(12)] == _frames(source)[0]
        assert planes[0].shape == (192, 320)
    alone = _alone(still, tmp_path / "alone.mp4", reuse_still=True)
    assert _largest_difference(tmp_path / "still-out.mp4", alone) <= 1
    assert _largest_difference(tmp_path / "moving-out.mp4", _alone(moving, tmp_path / "plain.mp4")) <= 1


def test_a_reconnect_forgets_the_feeds_still_frame_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vsr.pipeline.watch_feed as feed_module

    real_open = feed_module.open_source

    def reconnecting(*args: object, **kwargs: object) -> object:
        source = real_open(*args, **kwargs)  # type: ignore[arg-type]
        items = source.items

        def marked() -> object:
            for item in items():
                if isinstance(item, Frame) and item.index == 5:
                    item.extra["discontinuity"] = True  # as a LiveSource marks a new connection's first
                yield item

        source.items = marked  # type: ignore[method-assign]
        return source

    monkeypatch.setattr(feed_module, "open_source", reconnecting)
    still = _still_clip(tmp_path / "still.mp4", 10)
    config = _config(tmp_path, _camera("cam", still, "out.mp4", reuse_still=True), batch=4)
    summary = WatchRun(load_watch_config(config)).run()
    (report,) = summary.feeds
    assert report.error is None, report.error
    # frames 0 and 5 (the new connection's first) ran through the model, the 8 others reused
    assert (report.frames_reused, summary.frames_restored, report.frames_out) == (8, 2, 10)


def test_temporal_smoothing_on_one_feed_only(tmp_path: Path, slow_model: Callable[[float], None]) -> None:
    slow_model(0.02)  # frames of both feeds share model calls
    moving = write_clip(tmp_path / "moving.mp4", frames=12)
    negative = _inverted_clip(tmp_path / "negative.mp4", 12)
    config = _config(
        tmp_path,
        _camera("smooth", moving, "smooth.mp4", temporal="on", temporal_strength=0.8),
        _camera("plain", negative, "plain.mp4"),
        batch=4,
    )
    summary = WatchRun(load_watch_config(config)).run()
    assert summary.cross_feed_calls > 0 and summary.frames_restored == 24
    assert [s.name for s in summary.restore_steps] == ["upload", "analyse", "model", "temporal", "download"]
    smoothed = _alone(moving, tmp_path / "alone-on.mp4", temporal="on", temporal_strength=0.8, batch=4)
    assert _largest_difference(tmp_path / "smooth.mp4", smoothed) <= 1
    unsmoothed = _alone(moving, tmp_path / "alone-off.mp4")
    assert _largest_difference(smoothed, unsmoothed) > 10  # the step did something to compare
    assert _largest_difference(tmp_path / "plain.mp4", _alone(negative, tmp_path / "negative-off.mp4")) <= 1


def _tiny_denoiser(path: Path) -> Path:
    """An FFDNet-style checkpoint with random weights (as tests/test_denoise_pass.py builds one)."""
    import torch
    from safetensors.torch import save_file

    from vsr.models.denoise import FFDNet

    torch.manual_seed(0)
    net = FFDNet(num_feat=8, depth=3)
    with torch.no_grad():
        for p in net.parameters():  # the last conv starts at zero (the identity): make it matter
            p.uniform_(-0.2, 0.2)
    save_file(net.state_dict(), path)
    return path


def test_denoise_on_one_feed_with_its_own_checkpoint(
    tmp_path: Path, slow_model: Callable[[float], None]
) -> None:
    slow_model(0.02)
    denoiser = _tiny_denoiser(tmp_path / "tiny_denoiser.safetensors")
    moving = write_clip(tmp_path / "moving.mp4", frames=8)
    negative = _inverted_clip(tmp_path / "negative.mp4", 8)
    config = _config(
        tmp_path,
        _camera("noisy", moving, "noisy.mp4", denoise=25, denoiser="tiny_denoiser.safetensors"),  # relative
        _camera("clean", negative, "clean.mp4"),
        batch=4,
    )
    run = WatchRun(load_watch_config(config))
    assert list(run.denoisers) == [str(denoiser)]
    summary = run.run()
    assert summary.cross_feed_calls > 0
    # the motion-compensated average (on by default) keeps a scene's state: cuts are analysed
    assert [s.name for s in summary.restore_steps] == ["upload", "analyse", "denoise", "model", "download"]
    assert next(s for s in summary.restore_steps if s.name == "denoise").frames == 8
    denoised = _alone(moving, tmp_path / "alone-denoised.mp4", denoise=25, denoiser=str(denoiser))
    assert _largest_difference(tmp_path / "noisy.mp4", denoised) <= 1
    assert _largest_difference(denoised, _alone(moving, tmp_path / "alone-plain.mp4")) > 10
    assert _largest_difference(tmp_path / "clean.mp4", _alone(negative, tmp_path / "negative-plain.mp4")) <= 1


def test_restore_step_defaults_and_overrides(tmp_path: Path) -> None:
    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"")  # never opened
    config = _config(
        tmp_path,
        _camera("file", clip, "a.mp4"),
        _camera("cam", "rtsp://cam/1", "b.mp4"),
        _camera(
            "own",
            clip,
            "c.mp4",
            reuse_still=True,
            temporal="off",
            temporal_strength=0.3,
            denoise_temporal="on",
        ),
        run=RUN + 'temporal = "on"\ntemporal_strength = 0.7\ndenoise_temporal = "off"\n',
    )
    cameras = {c.name: c.options for c in load_watch_config(config).cameras}
    # reuse_still: on for live inputs, off for files, as `vsr upscale`; the top level is the default
    assert [(o.reuse_still, o.temporal, o.temporal_strength) for o in cameras.values()] == [
        (False, "on", 0.7),
        (True, "on", 0.7),
        (True, "off", 0.3),
    ]
    assert all(o.denoise_level is None and o.denoiser is None for o in cameras.values())
    assert [o.denoise_temporal for o in cameras.values()] == ["off", "off", "on"]


def test_denoise_without_a_denoiser_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vsr.models.builtin

    monkeypatch.setattr(vsr.models.builtin, "builtin_denoiser", lambda: None)  # an install without one
    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"")
    config = _config(
        tmp_path,
        _camera("given", clip, "a.mp4", denoiser="d.safetensors"),
        _camera("door", clip, "b.mp4"),
        run=RUN + 'denoise = "auto"\n',
    )
    result = CliRunner().invoke(app, ["watch", str(config)])
    assert (result.exit_code, result.output.strip()) == (
        2,
        f"vsr: error: {config}: camera 'door': denoise = 'auto' needs a denoiser and this install ships "
        'none; set denoiser = "CHECKPOINT" (an FFDNet-style model)',
    )


# -- config errors ----------------------------------------------------------------------------

_STEPS = "reuse_still, reuse_regions, temporal, temporal_strength, denoise, denoiser, denoise_temporal"
_KNOWN = (
    "name, url, output, segment, reconnect_attempts, reconnect_interval, read_timeout, open_timeout, rtsp_transport, "
    + _STEPS
)


@pytest.mark.parametrize(
    ("run", "cameras", "message"),
    [
        (RUN, [("a", {"urll": "x"})], "camera 'a': unknown key 'urll'; known keys: " + _KNOWN),
        (RUN + "modle = 'x'\n", [("a", {})], "unknown key 'modle'; known keys: model, scale, device, "
         "precision, batch, compile, max_latency, codec, crf, preset, " + _STEPS + ", and [[camera]] tables"),
        (RUN, [("a", {}), ("a", {"output": "other.mp4"})], "camera 'a': name is used by another camera too"),
        (RUN, [("a", {}), ("b", {})], "camera 'b': output OUT is also camera 'a''s output; give each camera its own"),
        (RUN, [("a", {"reconnect_attempts": -5})], "camera 'a': reconnect_attempts must be at least -1, got -5"),
        (RUN, [("a", {"read_timeout": "5s"})], "camera 'a': read_timeout must be a number of seconds, got '5s'"),
        (RUN, [("a", {"segment": "ten minutes"})], "camera 'a': segment must be a positive duration such as "
         "10m, 30s, 1h or a number of seconds, got 'ten minutes'"),
        (RUN, [("a", {"rtsp_transport": "sctp"})], "camera 'a': rtsp_transport must be one of tcp, udp, got 'sctp'"),
        (RUN, [("a", {"output": "a.avi"})], "camera 'a': output cannot write .avi files; use one of "),
        (RUN, [("a", {"output": "hls/index.m3u8"})], "camera 'a': output index.m3u8: cameras record to .mp4, "
         ".mov, .mkv or .ts files (with segment to cut them); HLS playlists are written by vsr upscale"),
        (RUN + 'codec = "mpeg2"\n', [("a", {})], "camera 'a': unknown encoder 'mpeg2'; vsr encodes with "),
        (RUN, [("a", {"url": "ftp://cam/x"})], "camera 'a': url ftp:// inputs are not read; vsr reads files, "),
        (RUN.replace('"ultrafast"', '"warp"'), [("a", {})], "camera 'a': libx264 has no preset 'warp'; use one of "),
        (RUN + "scale = 0\n", [("a", {})], None),  # a duplicate key: TOML itself refuses it
        (RUN.replace("scale = 2", "scale = 9"), [("a", {})], "scale must be 1..8, got 9"),
        (RUN.replace('"fp32"', '"fp8"'), [("a", {})], "precision must be one of auto, fp32, fp16, bf16, got 'fp8'"),
        (RUN, [], "needs at least one [[camera]] table (name, url, output)"),
        (RUN, [("a", {"temporal": "yes"})], "camera 'a': temporal must be one of off, on, got 'yes'"),
        (RUN + "temporal = true\n", [("a", {})], "temporal must be one of off, on, got True"),
        (RUN, [("a", {"temporal_strength": 1.5})], "camera 'a': temporal_strength must be a number in 0..1, got 1.5"),
        (RUN, [("a", {"reuse_still": "yes"})], "camera 'a': reuse_still must be true or false, got 'yes'"),
        (RUN, [("a", {"denoise": "loud"})], "camera 'a': denoise must be \"off\", \"auto\" or a noise sigma in "
         "(0, 255] (0..255 scale), got 'loud'"),
        (RUN, [("a", {"denoiser": "d.safetensors"})], "camera 'a': denoiser is given but denoise is off; "
         "set denoise = \"auto\" or a sigma"),
    ],
)  # fmt: skip
def test_config_errors_are_one_line_naming_file_camera_and_key(
    tmp_path: Path, run: str, cameras: list[tuple[str, dict[str, object]]], message: str | None
) -> None:
    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"")  # never opened: the config is checked first
    out = tmp_path / "out.mp4"
    tables = [
        _camera(
            name,
            extra.get("url", clip),  # type: ignore[arg-type]
            extra.get("output", out),  # type: ignore[arg-type]
            **{k: v for k, v in extra.items() if k not in ("output", "url")},
        )
        for name, extra in cameras
    ]
    config = _config(tmp_path, *tables, run=run, batch=2)
    result = CliRunner().invoke(app, ["watch", str(config)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    if message is None:
        assert lines[0].startswith(f"vsr: error: cannot read config {config}: ")
    else:
        expected = f"vsr: error: {config}: {message.replace('OUT', str(out))}"
        assert lines[0].startswith(expected) if message.endswith(" ") else lines[0] == expected
    assert not out.exists()


def test_a_camera_without_its_keys_and_a_missing_config(tmp_path: Path) -> None:
    config = tmp_path / "cameras.toml"
    config.write_text(RUN + '[[camera]]\nname = "door"\nurl = "rtsp://cam/1"\n')
    result = CliRunner().invoke(app, ["watch", str(config)])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"vsr: error: {config}: camera 'door': missing key 'output' (every camera needs name, url, output)"
    )
    result = CliRunner().invoke(app, ["watch", str(tmp_path / "nope.toml")])
    assert (result.exit_code, result.output.strip()) == (
        2,
        f"vsr: error: config file not found: {tmp_path / 'nope.toml'}",
    )


def test_an_input_that_cannot_be_opened_fails_its_camera_alone(tmp_path: Path) -> None:
    good = write_clip(tmp_path / "good.mp4", frames=3)
    config = _config(
        tmp_path,
        _camera("good", good, tmp_path / "a.mp4"),
        _camera("gone", tmp_path / "missing.mp4", tmp_path / "b.mp4"),
    )
    result = CliRunner().invoke(app, ["watch", str(config), "-q"])
    assert (result.exit_code, result.output.strip()) == (
        1,
        f"vsr: error: camera 'gone': input not found: {tmp_path / 'missing.mp4'}",
    )
    assert len(_frames(tmp_path / "a.mp4")[0]) == 3 and not list(tmp_path.glob("b.*"))


def test_an_existing_output_needs_overwrite(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=3)
    (tmp_path / "a.mp4").write_bytes(b"old")
    config = _config(tmp_path, _camera("a", clip, tmp_path / "a.mp4"))
    result = CliRunner().invoke(app, ["watch", str(config)])
    assert (result.exit_code, result.output.strip()) == (
        2,
        f"vsr: error: camera 'a': output {tmp_path / 'a.mp4'} exists; pass --overwrite to replace it",
    )
    assert CliRunner().invoke(app, ["watch", str(config), "-y", "-q"]).exit_code == 0
    assert len(_frames(tmp_path / "a.mp4")[0]) == 3


# -- a camera that dies -----------------------------------------------------------------------


@needs_server
def test_a_camera_that_dies_ends_its_own_output_while_a_file_feed_goes_on(
    tmp_path: Path, slow_model: Callable[[float], None]
) -> None:
    slow_model(0.03)  # at most 2 frames per 0.03 s: the file feed takes seconds
    clip = write_clip(tmp_path / "cam.mp4", width=320, height=240, frames=100, options={"g": "25"})
    long_file = write_clip(tmp_path / "file.mp4", width=320, height=240, frames=120)
    server = RtspServer(clip)
    try:
        config = _config(
            tmp_path,
            _camera(
                "cam", server.url, tmp_path / "cam-out.mp4", reconnect_attempts=1, reconnect_interval=0.2
            ),
            _camera("file", long_file, tmp_path / "file-out.mp4"),
            batch=2,
        )
        run = WatchRun(load_watch_config(config))
        cam, file_feed = run.feeds
        running = InThread(run.run)
        running.wait_for(lambda: cam.frames_in >= 12, "frames of the camera")
        server.kill()
        running.wait_for(lambda: cam.events.counts["gave_up"] >= 1, "the camera to give up")
        running.wait_for(lambda: cam.completed, "the camera's output to be finished")
        assert file_feed.frames_out < 120  # the file feed is still going
        summary = running.result(60)
    finally:
        server.stop()
    reports = {f.name: f for f in summary.feeds}
    cam_report, file_report = reports["cam"], reports["file"]
    assert file_report.completed and file_report.frames_out == 120
    assert _frames(tmp_path / "file-out.mp4")[0] == _frames(long_file)[0]
    assert cam_report.completed and cam_report.disconnects == 1 and cam_report.reconnects == 0
    assert cam_report.reconnect_failures == 1 and cam_report.gave_up
    assert cam_report.ended_by.startswith(f"gave up: cannot connect to {server.url} after 1 attempt: ")
    assert summary.missing == [cam_report]  # the CLI's exit code 3, as for a camera down from the start
    kinds = [e.kind for e in cam_report.events if e.kind in ("connected", "disconnected", "gave_up")]
    assert kinds == ["connected", "disconnected", "gave_up"]
    times, planes = _frames(tmp_path / "cam-out.mp4")
    assert len(times) == cam_report.frames_out == cam_report.frames_in - cam_report.frames_dropped >= 12
    assert all(b > a for a, b in itertools.pairwise(times)) and planes[0].shape == (480, 640)
    assert cam_report.latency.frames == cam_report.frames_out and summary.cross_feed_calls > 0
    assert not list(tmp_path.glob("*.partial.*"))


# -- a camera that is down when the run starts ------------------------------------------------


def _port_nobody_listens_on() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@needs_server
def test_a_camera_down_at_the_start_joins_when_it_comes_up_while_a_file_feed_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = write_clip(tmp_path / "cam.mp4", width=320, height=240, frames=100, options={"g": "25"})
    long_file = write_clip(tmp_path / "file.mp4", frames=60)
    server = RtspServer(clip)
    server.kill()  # its URL, with nothing listening there yet
    try:
        config = _config(
            tmp_path,
            _camera("late", server.url, "late.mp4", reconnect_attempts=10, reconnect_interval=0.25),
            _camera("file", long_file, "file-out.mp4"),
            batch=2,
        )
        run = WatchRun(load_watch_config(config))
        late, file_feed = run.feeds
        started = time.monotonic()
        with caplog.at_level(logging.WARNING):
            running = InThread(run.run)
            running.wait_for(lambda: file_feed.completed, "the file feed to be finished")
            # the file was recorded whole while the camera was down
            assert late.plan is None and late.frames_in == 0 and late.events.counts["connect_failed"] >= 1
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
            server.start()  # the camera comes up after about 1 s
            running.wait_for(lambda: late.frames_out >= 20, "frames of the late camera")
            run.cancel()
            summary = running.result(30)
    finally:
        server.stop()
    reports = {f.name: f for f in summary.feeds}
    late_report, file_report = reports["late"], reports["file"]
    assert file_report.completed and file_report.ended_by == "end of file"
    assert file_report.frames_in == file_report.frames_out == 60
    assert _frames(tmp_path / "file-out.mp4")[0] == _frames(long_file)[0]
    # the late camera: its failed attempts, then the connection; planned from its first frame
    failed = late_report.reconnect_failures
    assert failed >= 2 and late_report.connections == 1 and late_report.reconnects == 0
    assert [e.kind for e in late_report.events] == ["connect_failed"] * failed + ["connected"]
    first = late_report.events[0].detail
    assert first == "attempt 1: Connection refused"
    assert late_report.events[-1].detail == f"{server.url} (320x240)"
    assert (late_report.input_size, late_report.output_size) == ((320, 240), (640, 480))
    assert late_report.completed and late_report.ended_by == "interrupted" and not late_report.gave_up
    assert late_report.output == str(tmp_path / "late.mp4")
    times, planes = _frames(tmp_path / "late.mp4")
    assert len(times) == late_report.frames_out >= 20 and planes[0].shape == (480, 640)
    assert all(b > a for a, b in itertools.pairwise(times))
    assert summary.interrupted and summary.missing == [] and summary.failed == []
    logged = [r.getMessage() for r in caplog.records]
    assert f"camera 'late': connect_failed: {first}" in logged
    assert (
        f"camera 'late': connected after {failed} failed attempts, recording 320x240 -> 640x480 -> "
        f"{tmp_path / 'late.mp4'}" in logged
    )
    assert not list(tmp_path.glob("*.partial.*"))


def test_a_camera_that_never_comes_up_gives_up_with_nothing_written_and_exit_code_3(tmp_path: Path) -> None:
    url = f"rtsp://127.0.0.1:{_port_nobody_listens_on()}/cam"
    clip = write_clip(tmp_path / "clip.mp4", frames=30)
    config = _config(
        tmp_path,
        _camera("gone", url, "gone.mp4", reconnect_attempts=2, reconnect_interval=0.1),
        _camera("file", clip, "file-out.mp4"),
    )
    started = time.monotonic()
    result = CliRunner().invoke(app, ["watch", str(config), "--json", str(tmp_path / "run.json")])
    assert time.monotonic() - started < 10
    assert result.exit_code == 3, result.output
    # the first try and reconnect_attempts=2 more, as `vsr upscale --reconnect-attempts 2`
    gave_up = f"gave up: cannot connect to {url} after 3 attempts: Connection refused"
    lines = result.output.strip().splitlines()
    assert lines[-1] == f"vsr: error: camera 'gone': {gave_up}"
    assert f"camera gone: nothing written; ended: {gave_up}" in lines
    report = {f["name"]: f for f in json.loads((tmp_path / "run.json").read_text())["feeds"]}
    gone = report["gone"]
    assert gone["ended_by"] == gave_up and gone["gave_up"] and gone["error"] is None
    assert (gone["connections"], gone["reconnect_failures"], gone["frames_out"]) == (0, 3, 0)
    assert gone["output"] is None and gone["input_size"] is None and not gone["completed"]
    assert [e["kind"] for e in gone["events"]] == ["connect_failed"] * 3 + ["gave_up"]
    assert [e["detail"].split(":")[0] for e in gone["events"][:3]] == ["attempt 1", "attempt 2", "attempt 3"]
    assert not list(tmp_path.glob("gone*"))  # no file under its name, nor a partial one
    assert report["file"]["completed"] and report["file"]["frames_out"] == 30
    assert len(_frames(tmp_path / "file-out.mp4")[0]) == 30


def test_every_camera_unreachable_ends_with_one_error_line_each(tmp_path: Path) -> None:
    urls = [f"rtsp://127.0.0.1:{_port_nobody_listens_on()}/{name}" for name in ("a", "b")]
    config = _config(
        tmp_path,
        *(
            _camera(name, url, f"{name}.mp4", reconnect_attempts=1, reconnect_interval=0.05)
            for name, url in zip("ab", urls, strict=True)
        ),
    )
    vsr_cli = Path(sys.executable).with_name("vsr")
    done = subprocess.run(
        [str(vsr_cli), "watch", str(config), "-q"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 3, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("vsr: error: ")]
    assert errors == [
        f"vsr: error: camera {name!r}: gave up: cannot connect to {url} after 2 attempts: Connection refused"
        for name, url in zip("ab", urls, strict=True)
    ]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cameras.toml"]


def test_cancel_while_a_camera_is_still_connecting_ends_at_once(tmp_path: Path) -> None:
    url = f"rtsp://127.0.0.1:{_port_nobody_listens_on()}/cam"
    config = _config(tmp_path, _camera("down", url, "down.mp4", reconnect_attempts=-1, reconnect_interval=5))
    run = WatchRun(load_watch_config(config))
    running = InThread(run.run)
    running.wait_for(lambda: run.feeds[0].events.counts["connect_failed"] == 1, "the first attempt")
    cancelled = time.monotonic()
    run.cancel()  # during the 5 s wait before its next attempt
    summary = running.result(10)
    assert time.monotonic() - cancelled < 2
    (report,) = summary.feeds
    assert report.ended_by == "interrupted before it came up (1 failed attempts)"
    assert summary.missing == [report] and report.output is None and not list(tmp_path.glob("down*"))


def test_an_unknown_model_is_refused_with_the_config_named(tmp_path: Path) -> None:
    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"")
    config = _config(
        tmp_path, _camera("a", clip, tmp_path / "out.mp4"), run=RUN.replace('"bicubic"', '"nomodel"')
    )
    result = CliRunner().invoke(app, ["watch", str(config)])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"vsr: error: {config}: model: unknown model 'nomodel': not a built-in model (")
