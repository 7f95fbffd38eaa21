"""torch.compile builds (`vsr.backends.compiled`): equal outputs, bounded builds, padding, fallback,
and how the plan turns them on."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vsr.backends import BackendOptions, create_backend
from vsr.backends.compiled import AUTO_MIN_FRAMES as COMPILE_MIN_FRAMES
from vsr.backends.compiled import CompiledShapes, cxx_compiler
from vsr.cli import app
from vsr.media import probe
from vsr.models import load_model
from vsr.pipeline.denoise_pass import DenoisePass
from vsr.pipeline.options import UpscaleOptions
from vsr.pipeline.plan import make_plan
from vsr.pipeline.watch import WatchRun
from vsr.pipeline.watch_config import load_watch_config

from clips import write_clip

CPU = torch.device("cpu")
needs_compiler = pytest.mark.skipif(
    cxx_compiler() is None, reason="torch.compile on the CPU needs a C++ compiler (g++) and none is installed"
)


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@needs_compiler
def test_compiled_backend_equals_eager_pads_small_batches_and_bounds_builds() -> None:
    model = load_model("fast-x2")
    eager = create_backend("torch", model, BackendOptions(device=CPU, precision="bf16"))
    built = create_backend("torch", model, BackendOptions(device=CPU, precision="bf16", compile=True))
    compiled = built.compiled  # type: ignore[attr-defined]
    x = torch.rand(3, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    reference = eager.run(x)
    with torch.inference_mode():
        fp32 = model.module(x)
    out = built.run(x)
    # the same bf16 convolutions; the residual is added in float32 inside the build instead of
    # after a rounding to bf16: at most one bf16 step from eager, and closer to the fp32 model
    assert out.dtype == torch.float32 and out.is_contiguous()
    assert 0 < (out - reference).abs().max() <= 2**-7
    assert (out - fp32).abs().mean() < (reference - fp32).abs().mean()
    assert (compiled.built, compiled.padded_calls) == (1, 0) and compiled.build_seconds > 0
    # a stream's last, smaller batch runs the batch-3 build, padded, not a new build
    assert torch.equal(built.run(x[:2]), out[:2])
    assert (compiled.built, compiled.padded_calls) == (1, 1)
    # past the bound, a new shape runs eagerly
    bounded = CompiledShapes(eager._module, name="fast-x2", max_shapes=1)  # type: ignore[attr-defined]
    with torch.inference_mode():
        small = x[:1].to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        bounded(small)
        other = torch.rand(1, 3, 16, 24).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        assert torch.equal(bounded(other), eager._module(other))  # type: ignore[attr-defined]
    assert bounded.built == 1


def test_a_failed_build_is_logged_once_and_runs_eagerly(caplog: pytest.LogCaptureFixture) -> None:
    module = torch.nn.Conv2d(3, 3, 3, padding=1).eval()
    compiled = CompiledShapes(module, name="conv")
    calls = []

    def broken(*args: object) -> torch.Tensor:
        calls.append(args)
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")

    compiled._compiled = broken  # type: ignore[assignment]
    x = torch.rand(1, 3, 8, 8)
    with caplog.at_level(logging.WARNING, logger="vsr.backends.compiled"), torch.inference_mode():
        first = compiled(x)
        second = compiled(torch.rand(2, 3, 8, 8))
        expected = module(x)
    assert torch.equal(first, expected) and second.shape == (2, 3, 8, 8)
    assert compiled.failed and compiled.built == 0 and len(calls) == 1  # never tried again
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "torch.compile of conv failed (RuntimeError: InvalidCxxCompiler: No working C++ compiler found); "
        "running it eagerly"
    ]


@needs_compiler
def test_compiled_denoiser_pads_the_noise_levels_with_the_batch() -> None:
    model = load_model("denoise")
    eager = DenoisePass(model, device=CPU, precision="bf16", sigma=20.0)
    built = DenoisePass(model, device=CPU, precision="bf16", sigma=20.0, compile=True)
    rgb = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(1))
    reference = eager(rgb, [True, False])
    out = built(rgb, [True, False])
    assert (out - reference).abs().max() <= 2**-7  # the last subtraction in float32, not bf16
    assert torch.equal(built(rgb[:1], [True]), out[:1])
    assert built.compiled is not None and (built.compiled.built, built.compiled.padded_calls) == (1, 1)


def test_plan_turns_compile_on_for_long_cpu_files_only(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "in.mp4", width=64, height=48, frames=3)
    info = probe(clip).video
    short = make_plan(info, UpscaleOptions(model="fast-x2", device="cpu"))
    assert not short.compile and not short.backend_options().compile
    long = dataclasses.replace(info, frame_count=COMPILE_MIN_FRAMES)
    plan = make_plan(long, UpscaleOptions(model="fast-x2", device="cpu"))
    if cxx_compiler() is None:
        assert not plan.compile and any("no C++ compiler" in n for n in plan.notes)
    else:
        assert plan.compile and plan.backend_options().compile
        assert "torch.compile" in plan.describe()[1]
    # a live input (no frame count) runs eagerly unless asked: a build would hold its first frame
    live = dataclasses.replace(info, frame_count=None)
    eager = make_plan(live, UpscaleOptions(model="fast-x2", device="cpu"))
    assert not eager.compile and "torch.compile" not in eager.describe()[1]
    asked = (
        make_plan(live, UpscaleOptions(model="fast-x2", device="cpu", compile=True))
        if cxx_compiler()
        else None
    )
    assert asked is None or asked.compile
    off = make_plan(long, UpscaleOptions(model="fast-x2", device="cpu", compile=False))
    assert not off.compile
    forced = (
        make_plan(info, UpscaleOptions(model="fast-x2", device="cpu", compile=True))
        if cxx_compiler()
        else None
    )
    assert forced is None or forced.compile
    onnx = make_plan(long, UpscaleOptions(model="fast-x2", device="cpu", backend="onnxruntime"))
    assert not onnx.compile  # auto leaves other backends alone


def test_compile_with_another_backend_is_one_line(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "in.mp4", width=64, height=48, frames=2)
    out = tmp_path / "out.mp4"
    args = ["upscale", str(clip), str(out), "-m", "fast-x2", "--backend", "onnxruntime", "--compile"]
    result = CliRunner().invoke(app, args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and lines == [
        "vsr: error: --compile needs the torch backend; this run is onnxruntime on cpu"
    ], result.stderr
    assert not out.exists()


@needs_compiler
def test_upscale_with_compile_writes_the_frames_eager_writes_within_45_db(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "in.mp4", width=96, height=64, frames=6)
    outs = {}
    for flag in ("--compile", "--no-compile"):
        out = tmp_path / f"out{flag}.mp4"
        result = CliRunner().invoke(
            app, ["upscale", str(clip), str(out), "-m", "fast-x2", "--crf", "0", flag]
        )
        assert result.exit_code == 0, result.output
        outs[flag] = (out, result.output)
    assert "torch.compile: 1 input shape(s) built in" in outs["--compile"][1]
    assert "torch.compile" not in outs["--no-compile"][1]
    compiled, eager = _frames(outs["--compile"][0]), _frames(outs["--no-compile"][0])
    assert len(compiled) == len(eager) == 6
    for a, b in zip(compiled, eager, strict=True):  # lossless x264: what the model made, in 4:2:0
        assert 10 * np.log10(255**2 / np.mean((a.astype(float) - b) ** 2)) > 45


def test_watch_runs_eagerly_unless_the_config_asks_for_builds(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "in.mp4", width=64, height=48, frames=2)
    camera = f'[[camera]]\nname = "door"\nurl = "{clip}"\noutput = "{tmp_path / "out.mp4"}"\n'
    runs = {}
    for name, run in {
        "fast": 'model = "fast-x2"\ndevice = "cpu"\n',
        "fast-on": 'model = "fast-x2"\ndevice = "cpu"\ncompile = true\n',
        "bicubic": 'model = "bicubic"\nscale = 2\ndevice = "cpu"\n',
    }.items():
        config = tmp_path / f"{name}.toml"
        config.write_text(run + camera)
        runs[name] = WatchRun(load_watch_config(config))
    assert runs["fast-on"].compile is True  # asked for; a missing compiler falls back at the build
    assert ", torch.compile" in runs["fast-on"].describe()[1]
    assert runs["fast"].compile is False and runs["bicubic"].compile is False  # feeds: eager by default
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "fast-x2"\ncompile = "yes"\n' + camera)
    result = CliRunner().invoke(app, ["watch", str(bad)])
    assert result.exit_code == 2 and result.output.strip() == (
        f"vsr: error: {bad}: compile must be true or false, got 'yes'"
    ), result.output
