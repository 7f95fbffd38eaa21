"""The command line: one-line errors with the right exit codes, probe, JSON, and SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from vsr.cli import app
from vsr.cli.errors import _stdout_reader_gone

from clips import write_clip

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stderr


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4", frames=6)


def test_bad_inputs_give_one_line_and_exit_1(tmp_path: Path, clip: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    cases = {
        str(tmp_path / "missing.mp4"): "input not found",
        str(text): "notes.mp4",
        str(_audio_only(tmp_path / "audio.m4a")): "no video stream",
        str(truncated): "truncated",
    }
    for source, expected in cases.items():
        code, err = _invoke("upscale", source, str(tmp_path / "out.mp4"), "-m", "lanczos", "-q")
        line = _one_line_error(err)
        assert code == 1, (source, err)
        assert line.startswith("vsr: error: ") and expected in line, (source, line)
        assert not (tmp_path / "out.mp4").exists()


def test_bad_models_and_outputs_exit_1(tmp_path: Path, clip: Path) -> None:
    code, err = _invoke("upscale", str(clip), str(tmp_path / "out.mp4"), "-m", "nosuchmodel")
    assert code == 1 and "unknown model 'nosuchmodel'" in _one_line_error(err)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x80\x04not a checkpoint")
    code, err = _invoke("upscale", str(clip), str(tmp_path / "out.mp4"), "-m", str(junk))
    assert code == 1 and "junk.pth" in _one_line_error(err)
    code, err = _invoke(
        "upscale", str(clip), str(tmp_path / "no" / "such" / "dir" / "out.mp4"), "-m", "lanczos"
    )
    assert code == 1 and "out.mp4" in _one_line_error(err)


def test_usage_errors_exit_2(tmp_path: Path, clip: Path) -> None:
    out = tmp_path / "out.mp4"
    for args, expected in [
        (["--size", "big"], "--size must look like 3840x2160"),
        (["--scale", "3", "--size", "640x480"], "either --scale or --size"),
        (["--batch", "0"], "--batch must be at least 1"),
        (["--codec", "mpeg1video"], "mpeg1video"),
    ]:
        code, err = _invoke("upscale", str(clip), str(out), "-m", "lanczos", *args)
        assert code == 2 and expected in _one_line_error(err), (args, err)
    code, err = _invoke("upscale", str(clip), str(tmp_path / "out.avi"), "-m", "lanczos")
    assert code == 2 and ".avi" in _one_line_error(err)
    out.write_bytes(b"keep me")
    code, err = _invoke("upscale", str(clip), str(out), "-m", "lanczos")
    assert code == 2 and "--overwrite" in _one_line_error(err) and out.read_bytes() == b"keep me"
    code, err = _invoke("upscale", str(clip), str(clip), "-m", "lanczos", "-y")
    assert code == 2 and "is the input file" in _one_line_error(err)
    out.unlink()
    kept = tmp_path / "out.partial.mp4"  # what a stopped run left
    kept.write_bytes(b"kept frames")
    code, err = _invoke("upscale", str(clip), str(out), "-m", "lanczos")
    assert code == 2 and _one_line_error(err) == (
        f"vsr: error: {kept} exists: what an earlier run kept when it stopped; move it away, or pass --overwrite to replace it"
    )
    assert kept.read_bytes() == b"kept frames" and not out.exists()
    code, err = _invoke("upscale", str(clip), str(out), "-m", "lanczos", "-q", "-y")
    assert code == 0 and out.exists() and not kept.exists()
    # a report file that could not be written is refused before the work, not after it
    out.unlink()
    missing = tmp_path / "no" / "summary.json"
    code, err = _invoke("upscale", str(clip), str(out), "-m", "lanczos", "--json", str(missing))
    assert (
        code == 2
        and _one_line_error(err) == f"vsr: error: --json {missing}: folder {missing.parent} does not exist"
    )
    assert not out.exists() and not out.with_name("out.partial.mp4").exists()
    code, err = _invoke("upscale", str(clip), str(out), "-m", "lanczos", "--json", str(tmp_path))
    assert (
        code == 2 and _one_line_error(err) == f"vsr: error: --json {tmp_path} is a folder; give a file name"
    )


def test_upscale_writes_json_summary_and_probe_describes_the_plan(tmp_path: Path, clip: Path) -> None:
    out, summary_path = tmp_path / "out.mkv", tmp_path / "summary.json"
    result = runner.invoke(
        app,
        [
            "upscale",
            str(clip),
            str(out),
            "-m",
            "bicubic",
            "-s",
            "2",
            "--json",
            str(summary_path),
            "--preset",
            "ultrafast",
        ],
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["frames_out"] == summary["frames_in"] == 6
    assert summary["output_size"] == [320, 192] and summary["completed"] is True
    assert set(summary["stages"]) == {"decode", "restore", "encode"}
    assert summary["bottleneck"] in summary["stages"]
    assert "bottleneck" in result.stderr and f"wrote {out}" in result.stderr

    result = runner.invoke(app, ["probe", str(clip), "-m", "lanczos", "-s", "4"])
    assert result.exit_code == 0, result.stderr
    assert "160x96 -> model x4 -> 640x384" in result.stdout
    assert "libx264" in result.stdout


def test_sigterm_stops_cleanly_keeps_a_playable_partial_file_and_exits_130(
    shared_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsr", "upscale", str(shared_data / "video" / "vtest.avi"), str(out),
         "-m", "bicubic", "-s", "2", "--preset", "ultrafast"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    partial = out.with_name("out.partial.mp4")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not partial.exists() or partial.stat().st_size < 200_000):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"kept in {partial}" in stderr
    assert not out.exists()
    with av.open(str(partial)) as c:
        kept = [f.pts for f in c.decode(video=0)]
    assert len(kept) > 0 and kept == sorted(kept)
    # running again to the same output must not write over what the stopped run kept
    saved = partial.read_bytes()
    again = subprocess.run(
        [sys.executable, "-m", "vsr", "upscale", str(shared_data / "video" / "vtest.avi"), str(out),
         "-m", "bicubic", "-s", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"vsr: error: {partial} exists: what an earlier run kept when it stopped; move it away, or pass "
        "--overwrite to replace it"
    ]
    assert partial.read_bytes() == saved and not out.exists()


def test_a_closed_stdout_pipe_stops_quietly_with_the_sigpipe_code(clip: Path) -> None:
    # `vsr probe clip.mp4 | head -1`: the reader has gone before the command writes
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "vsr", "probe", str(clip)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""  # no "internal error", no "Exception ignored ... BrokenPipeError"


def test_a_broken_pipe_elsewhere_is_still_an_internal_error(
    monkeypatch: pytest.MonkeyPatch, clip: Path
) -> None:
    # a socket's EPIPE (PyAV raises av.error.BrokenPipeError when an RTSP server hangs up) is a failure
    def hang_up(*args: object, **kwargs: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys.modules["vsr.cli.probe"], "probe_media", hang_up)  # the module, not the command
    code, err = _invoke("probe", str(clip))
    assert code == 1
    assert "internal error (BrokenPipeError" in _one_line_error(err)
    # and the check itself: a pipe whose reader is open is not "gone"
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(write_end, "w", closefd=False) as stdout:
            monkeypatch.setattr(sys, "stdout", stdout)
            assert not _stdout_reader_gone()
            os.close(read_end)
            read_end = -1
            assert _stdout_reader_gone()
    finally:
        os.close(write_end)
        if read_end >= 0:
            os.close(read_end)


def test_names_with_a_colon_are_files_not_protocols(
    tmp_path: Path, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # camera recordings are often named by time; FFmpeg would read "rec-2024-01-01T12" as a protocol
    monkeypatch.chdir(tmp_path)
    src = Path("rec-2024-01-01T12:30:00.mp4")
    shutil.copy(clip, src)
    with av.open(str(clip)) as c:
        frames, width = sum(1 for _ in c.decode(video=0)), c.streams.video[0].codec_context.width
    for out in ["./out-12:30.mp4", "out-12:30.mkv", "hls-12:30/index.m3u8"]:
        Path(out).parent.mkdir(exist_ok=True)
        code, err = _invoke("upscale", f"./{src}", out, "-m", "lanczos", "-s", "2", "-q")
        assert code == 0, err
        with av.open(str(tmp_path / out)) as c:
            assert c.streams.video[0].codec_context.width == 2 * width
            assert sum(1 for _ in c.decode(video=0)) == frames, out
    code, err = _invoke("upscale", str(src), str(src), "-m", "lanczos", "-y")
    assert code == 2 and "is the input file" in _one_line_error(err)


def test_an_output_too_small_to_encode_is_refused_before_the_run(tmp_path: Path, clip: Path) -> None:
    out = tmp_path / "tiny.mp4"
    for size in ("1x1", "1x-1"):
        code, err = _invoke("upscale", str(clip), str(out), "-m", "bicubic", "--size", size)
        assert code == 2, err
        assert _one_line_error(err).startswith("vsr: error: the output would be 1x1, 0x0 with even sides")
    assert not out.exists() and not out.with_name("tiny.partial.mp4").exists()


def test_options_that_would_fail_late_are_refused_first(tmp_path: Path, clip: Path) -> None:
    plot = tmp_path / "p.txt"
    code, err = _invoke("bench", str(clip), "-m", "bicubic", "-s", "2", "--plot", str(plot))
    assert (
        code == 2
        and _one_line_error(err) == f"vsr: error: --plot draws a PNG: give a name ending in .png, got {plot}"
    )
    code, err = _invoke("eval", str(tmp_path), "-s", "2", "--degradation", "realistic", "--seed", "-1")
    assert code == 2 and _one_line_error(err) == "vsr: error: --seed must be 0 or more, got -1"
    afile = tmp_path / "afile"
    afile.write_bytes(b"")
    code, err = _invoke("build-engine", "fast-x2", "--target", "tensorrt-rtx", "--out", str(afile))
    assert (
        code == 2
        and _one_line_error(err) == f"vsr: error: --out {afile} is a file; give the engine cache folder"
    )
    playlist = tmp_path / "hls" / "index.m3u8"
    playlist.parent.mkdir()
    code, err = _invoke("upscale", str(clip), str(playlist), "-m", "bicubic", "-s", "2", "--segment", "0.3")
    assert code == 2 and _one_line_error(err) == "vsr: error: HLS segments must last at least 1 s, got 0.3 s"
    assert list(playlist.parent.iterdir()) == []
    code, err = _invoke(
        "upscale", str(clip), str(tmp_path / "o.mp4"), "-m", "bicubic", "-s", "2", "--backend", "onnxruntime"
    )
    # (found when the backend is made, after the plan is printed: the error is the last line)
    assert code == 1 and err.strip().splitlines()[-1] == (
        "vsr: error: the onnxruntime backend runs network models; bicubic runs with --backend torch"
    )
    assert "Traceback" not in err and not (tmp_path / "o.mp4").exists()


def test_misspelt_values_are_usage_errors_and_a_missing_input_is_exit_1(tmp_path: Path, clip: Path) -> None:
    out = str(tmp_path / "o.mp4")
    for args, message in [
        (
            ["upscale", str(clip), out, "--precision", "int8"],
            "--precision must be auto, fp32, fp16 or bf16, got 'int8'",
        ),
        (
            ["upscale", str(clip), out, "--device", "tpu"],
            "--device must be auto, cpu, cuda or cuda:N, got 'tpu'",
        ),
        (
            ["build-engine", "bicubic"],
            "bicubic is a classic resizer with no network: there is no engine to build",
        ),
    ]:
        code, err = _invoke(*args)
        assert code == 2 and _one_line_error(err).startswith(f"vsr: error: {message}"), (args, err)
    for command in (["upscale", "nothere.mp4", out], ["bench", "nothere.mp4"]):
        code, err = _invoke(*command)
        assert code == 1 and _one_line_error(err) == "vsr: error: input not found: nothere.mp4", (
            command,
            err,
        )


def test_an_option_without_the_one_it_refines_is_named(tmp_path: Path, clip: Path) -> None:
    from vsr.pipeline.options import load_options, unused_options

    assert unused_options(
        load_options(None, tile_overlap=8, temporal_strength=0.3, denoise_temporal="off")
    ) == [
        "--tile-overlap is unused without --tile",
        "--temporal-strength is unused without --temporal on",
        "--denoise-temporal is unused without --denoise",
    ]
    given = load_options(None, tile=64, tile_overlap=8, temporal="on", temporal_strength=0.3)
    assert unused_options(given) == []
    code, err = _invoke("upscale", str(clip), str(tmp_path / "o.mp4"), "-m", "bicubic", "--tile-overlap", "8")
    assert code == 0 and "note:      --tile-overlap is unused without --tile" in err


def test_an_unread_url_scheme_is_named_and_crf_0_is_shown(tmp_path: Path, clip: Path) -> None:
    code, err = _invoke("upscale", "ftp://127.0.0.1/x.mp4", str(tmp_path / "o.mp4"), "-m", "bicubic")
    assert code == 2 and _one_line_error(err).startswith(
        "vsr: error: ftp:// inputs are not read; vsr reads files, rtsp://"
    )
    code, err = _invoke(
        "upscale", str(clip), str(tmp_path / "o.mp4"), "-m", "bicubic", "-s", "2", "--crf", "0"
    )
    assert code == 0 and "encoder:   libx264 crf=0 preset=default" in err
