"""``--backend auto|torch|tensorrt|...``: which backend a run gets, and why, decided on the CPU.

`select_backend` is pure: the engine cache is real manifest JSON and engine files written to a
temporary folder (`write_manifest`), and the device facts (GPU, installed TensorRT) are written
here, so the CUDA branches run on a machine without a GPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vsr.backends.selection import (
    BackendChoice,
    CachedEngine,
    DeviceFacts,
    ModelIdentity,
    model_input_shapes,
    scan_engine_cache,
    select_backend,
)
from vsr.cli import app
from vsr.engines import EngineManifest, Environment, GpuInfo, parse_profiles
from vsr.engines.manifest import write_manifest
from vsr.engines.targets import detect_environment
from vsr.errors import ConfigError, DeviceError, EngineError
from vsr.media import probe
from vsr.models import load_model
from vsr.pipeline.options import UpscaleOptions
from vsr.pipeline.plan import make_plan

from clips import write_clip

H200 = GpuInfo(name="NVIDIA H200", compute_capability="9.0")
RTX4090 = GpuInfo(name="NVIDIA GeForce RTX 4090", compute_capability="8.9")
TRT = "10.13.0.35"
CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")
MODEL = ModelIdentity(source="weights/model.pth", sha256="a" * 64, scale=4)
P1080 = ((1, 3, 1080, 1920),)  # one 1080p frame, batch 1


def _manifest(name: str, *profiles: str, batch: int = 1, **changes: object) -> EngineManifest:
    base = EngineManifest(
        engine_file=name,
        engine_sha256="0" * 64,
        engine_bytes=0,
        model_source="weights/model.pth",
        model_name="model.pth",
        model_sha256="a" * 64,
        architecture="compact",
        scale=4,
        in_channels=3,
        out_channels=3,
        size_multiple=1,
        precision="fp16",
        profiles=parse_profiles(profiles, size_multiple=1, channels=3, batch=batch),
        profile_specs=profiles,
        batch=batch,
        builder="tensorrt",
        builder_version=TRT,
        network_typing="weak",
        gpu_name=H200.name,
        compute_capability=H200.compute_capability,
        target_compute_capabilities=(),
        optimization_level=3,
        onnx_sha256="b" * 64,
        onnx_opset=17,
        vsr_version="0.1.0",
        built_at="2026-01-01T00:00:00+00:00",
        build_seconds=1.5,
        parity_psnr_db=61.2,
        parity_note="measured",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _install(folder: Path, manifest: EngineManifest) -> Path:
    """An engine file and its manifest as `vsr build-engine` leaves them (sha256 and size true)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = f"engine {manifest.engine_file}".encode()
    m = dataclasses.replace(manifest, engine_sha256=hashlib.sha256(data).hexdigest(), engine_bytes=len(data))
    (folder / m.engine_file).write_bytes(data)
    write_manifest(m, folder)
    return folder / m.engine_file


def _facts(gpu: GpuInfo | None = H200, version: str | None = TRT) -> DeviceFacts:
    env = Environment(builder="tensorrt", version=version, gpu=gpu, problem="tensorrt is missing")
    return DeviceFacts(gpu=gpu, runtimes={"tensorrt": env})


def _select(
    requested: str,
    folder: Path,
    *,
    shapes: tuple[tuple[int, int, int, int], ...] = P1080,
    device: torch.device = CUDA,
    precision: str = "fp16",
    facts: DeviceFacts | None = None,
) -> BackendChoice:
    return select_backend(
        requested,
        model=MODEL,
        precision=precision,  # type: ignore[arg-type]
        shapes=shapes,
        engines=scan_engine_cache(folder),
        folder=folder,
        device=device,
        facts=facts if facts is not None else _facts(),
    )


def test_auto_without_engines_or_cuda_is_torch_on_the_cpu_and_says_why(tmp_path: Path) -> None:
    folder = tmp_path / "engines"
    choice = _select("auto", folder, device=CPU, precision="bf16", facts=DeviceFacts(gpu=None))
    assert choice == BackendChoice(
        backend="torch",
        engine=None,
        reason=f"auto: no engine for this model in {folder}/ (0 engines), no CUDA device -> torch on cpu",
    )
    # engines of other weights are counted, not used
    _install(folder, _manifest("other.engine", "1080p", model_sha256="d" * 64))
    assert _select("auto", folder, device=CPU, facts=DeviceFacts(gpu=None)).reason == (
        f"auto: no engine for this model in {folder}/ (1 engine), no CUDA device -> torch on cpu"
    )
    # CUDA but nothing for this model: torch on the GPU
    assert _select("auto", folder).reason == (
        f"auto: no engine for this model in {folder}/ (1 engine) -> torch on cuda:0"
    )


def test_auto_picks_a_valid_engine_that_covers_the_input(tmp_path: Path) -> None:
    engine = _install(tmp_path, _manifest("m.engine", "1080p"))
    choice = _select("auto", tmp_path)
    assert choice == BackendChoice(
        backend="tensorrt",
        engine=engine,
        reason=f"auto: engine m.engine covers 1920x1080 and runs here: TensorRT {TRT} on NVIDIA H200 "
        "(sm 9.0) -> tensorrt on cuda:0",
    )
    # the same engine, but the run is on the CPU
    assert _select("auto", tmp_path, device=CPU, facts=DeviceFacts(gpu=None)).reason == (
        f"auto: 1 engine for this model in {tmp_path}/, no CUDA device -> torch on cpu"
    )
    # of two valid covering engines, the newer one
    newer = _install(tmp_path, _manifest("n.engine", "1080p", built_at="2026-02-01T00:00:00+00:00"))
    assert _select("auto", tmp_path).engine == newer
    # bf16 has no engines
    assert _select("auto", tmp_path, precision="bf16").reason == (
        "auto: bf16 runs on torch only (engines are fp16 or fp32) -> torch on cuda:0"
    )


def test_auto_skips_an_engine_whose_profiles_do_not_cover_the_input(tmp_path: Path) -> None:
    _install(tmp_path, _manifest("m.engine", "720p"))
    choice = _select("auto", tmp_path)
    assert choice == BackendChoice(
        backend="torch",
        engine=None,
        reason="auto: engine m.engine is for this model but no profile of it (720p (1280x720, batch 1)) "
        "covers 1920x1080; build one that does: vsr build-engine weights/model.pth --precision fp16 "
        f"--profile 720p --profile 1920x1080 --batch 1 --target tensorrt --out {tmp_path} -> torch on cuda:0",
    )
    # the size fits but the batch does not: only --batch grows
    two = ((1, 3, 720, 1280), (2, 3, 720, 1280))
    assert _select("auto", tmp_path, shapes=two).reason == (
        "auto: engine m.engine is for this model but no profile of it (720p (1280x720, batch 1)) covers "
        "1280x720 at batch 1-2; build one that does: vsr build-engine weights/model.pth --precision fp16 "
        f"--profile 720p --batch 2 --target tensorrt --out {tmp_path} -> torch on cuda:0"
    )
    # the other precision only: say which precision would use it
    assert _select("auto", tmp_path, shapes=((1, 3, 720, 1280),), precision="fp32").reason == (
        f"auto: no fp32 engine for this model in {tmp_path}/ (it has fp16: --precision fp16 would use one) "
        "-> torch on cuda:0"
    )


def test_explicit_tensorrt_without_an_engine_names_the_build_command(tmp_path: Path) -> None:
    folder = tmp_path / "engines"
    with pytest.raises(EngineError) as info:
        _select("tensorrt", folder)
    assert str(info.value) == (
        f"no tensorrt engine for weights/model.pth (fp16, 1920x1080) in {folder}; build one: "
        f"vsr build-engine weights/model.pth --precision fp16 --profile 1920x1080 --target tensorrt --out {folder}"
    )
    # a batch of 4 tiles of several sizes: a range profile tuned for the commonest tile
    tiles = tuple((n, 3, h, w) for n in range(1, 5) for h, w in ((288, 288), (288, 288), (224, 272)))
    with pytest.raises(EngineError) as tiled:
        _select("tensorrt", folder, shapes=tiles)
    assert str(tiled.value) == (
        f"no tensorrt engine for weights/model.pth (fp16, 2 tile sizes from 272x224 to 288x288 at batch 1-4) "
        f"in {folder}; build one: vsr build-engine weights/model.pth --precision fp16 "
        f"--profile min:272x224,opt:288x288,max:288x288 --batch 4 --target tensorrt --out {folder}"
    )
    # an engine of the other precision is pointed at
    _install(folder, _manifest("m.engine", "1080p", precision="fp32"))
    with pytest.raises(
        EngineError, match=r"in .*engines \(there is one at fp32: pass --precision fp32\); build"
    ):
        _select("tensorrt", folder)
    # and an engine whose profiles miss is refused with its rebuild command
    _install(folder, _manifest("h.engine", "720p"))
    with pytest.raises(EngineError) as size:
        _select("tensorrt", folder)
    assert str(size.value) == (
        "engine h.engine is for this model but no profile of it (720p (1280x720, batch 1)) covers 1920x1080; "
        "build one that does: vsr build-engine weights/model.pth --precision fp16 --profile 720p "
        f"--profile 1920x1080 --batch 1 --target tensorrt --out {folder}"
    )


def test_foreign_gpu_and_stale_version_are_refused_with_the_rebuild_command(tmp_path: Path) -> None:
    engine = _install(tmp_path, _manifest("m.engine", "1080p"))
    rebuild = (
        "vsr build-engine weights/model.pth --precision fp16 --profile 1080p --batch 1 --target tensorrt "
        f"--out {tmp_path}"
    )
    foreign = (
        f"engine {engine} is foreign: it was built for NVIDIA H200 (sm 9.0), this GPU is NVIDIA GeForce RTX "
        f"4090 (sm 8.9); a TensorRT engine is tuned for one GPU; rebuild it: {rebuild}"
    )
    with pytest.raises(EngineError) as info:
        _select("tensorrt", tmp_path, facts=_facts(gpu=RTX4090))
    assert str(info.value) == foreign
    assert _select("auto", tmp_path, facts=_facts(gpu=RTX4090)) == BackendChoice(
        backend="torch", engine=None, reason=f"auto: {foreign} -> torch on cuda:0"
    )
    stale = (
        f"engine {engine} is stale: it was built by TensorRT {TRT} and TensorRT 11.0.0.1 is installed (an "
        f"engine runs only on the version that built it); rebuild it: {rebuild}"
    )
    with pytest.raises(EngineError) as old:
        _select("tensorrt", tmp_path, facts=_facts(version="11.0.0.1"))
    assert str(old.value) == stale
    assert (
        _select("auto", tmp_path, facts=_facts(version="11.0.0.1")).reason
        == f"auto: {stale} -> torch on cuda:0"
    )


def test_explicit_engine_backends_need_cuda_a_precision_and_the_runtime(tmp_path: Path) -> None:
    with pytest.raises(
        DeviceError,
        match=r"^the tensorrt backend runs on a CUDA GPU only and torch sees none; use --backend torch or auto$",
    ):
        _select("tensorrt", tmp_path, device=CPU, facts=DeviceFacts(gpu=None))
    with pytest.raises(DeviceError, match=r"^the tensorrt-rtx backend runs fp16 or fp32 engines, not bf16; "):
        _select("tensorrt-rtx", tmp_path, precision="bf16")
    with pytest.raises(DeviceError, match=r"^tensorrt is missing$"):
        _select("tensorrt", tmp_path, facts=_facts(version=None))
    with pytest.raises(
        ConfigError, match=r"^unknown backend 'trt'; choose one of: auto, onnxruntime, tensorrt"
    ):
        _select("trt", tmp_path)
    assert _select("torch", tmp_path).reason == "--backend torch -> torch on cuda:0"


def test_a_missing_tensorrt_module_gives_its_install_hint(tmp_path: Path) -> None:
    env = detect_environment("tensorrt")
    if env.version is not None:
        pytest.skip(f"tensorrt {env.version} is installed here")
    facts = DeviceFacts(gpu=H200, runtimes={"tensorrt": env})
    with pytest.raises(DeviceError) as info:
        _select("tensorrt", tmp_path, facts=facts)
    message = str(info.value)
    assert message.startswith(
        "tensorrt engines need the tensorrt module, which is not installed or does not load"
    )
    assert message.endswith("; pip install 'vsr[tensorrt]'") and "\n" not in message
    # auto says the same, and runs torch
    _install(tmp_path, _manifest("m.engine", "1080p"))
    assert _select("auto", tmp_path, facts=facts).reason == f"auto: {message} -> torch on cuda:0"


def test_tensorrt_is_preferred_to_tensorrt_rtx_when_both_run_here(tmp_path: Path) -> None:
    rtx = _manifest(
        "r.engine",
        "1080p",
        builder="tensorrt-rtx",
        builder_version="1.2.0.54",
        gpu_name=None,
        compute_capability=None,
        target_compute_capabilities=("9.0",),
        built_at="2026-03-01T00:00:00+00:00",  # newer, still second
    )
    rtx_engine = _install(tmp_path, rtx)
    envs = {
        "tensorrt": Environment(builder="tensorrt", version=TRT, gpu=H200),
        "tensorrt-rtx": Environment(
            builder="tensorrt-rtx", version="1.2.0.54", gpu=H200, known_targets=("9.0",)
        ),
    }
    facts = DeviceFacts(gpu=H200, runtimes=envs)  # type: ignore[arg-type]
    assert _select("auto", tmp_path, facts=facts).engine == rtx_engine
    trt = _install(tmp_path, _manifest("t.engine", "1080p"))
    assert _select("auto", tmp_path, facts=facts).engine == trt
    assert _select("tensorrt-rtx", tmp_path, facts=facts).engine == rtx_engine


def test_input_shapes_are_the_padded_frame_or_the_real_tiles() -> None:
    d = dataclasses.replace(load_model("lanczos", scale=2).descriptor, size_multiple=4)
    assert model_input_shapes(d, (1279, 719), batch=2, tile=0, tile_overlap=0) == (
        (1, 3, 720, 1280),
        (2, 3, 720, 1280),
    )
    shapes = model_input_shapes(d, (1279, 719), batch=1, tile=256, tile_overlap=16)
    # 719 padded to 720 rows: tiles of 256 own pixels and 16 of context each side; every window,
    # the edge ones moved inward, is 288 x 288 (one engine shape)
    assert sorted({(h, w) for _, _, h, w in shapes}) == [(288, 288)]


def test_make_plan_reports_the_choice_and_hands_it_to_the_backend(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only reason; a CUDA machine plans torch on CUDA")
    info = probe(write_clip(tmp_path / "in.mp4", width=64, height=48, frames=2)).video
    folder = tmp_path / "engines"
    plan = make_plan(info, UpscaleOptions(model="lanczos"), engine_dir=folder)
    reason = f"auto: no engine for this model in {folder}/ (0 engines), no CUDA device -> torch on cpu"
    assert (plan.backend, plan.engine, plan.backend_reason) == ("torch", None, reason)
    assert plan.describe()[2] == f"           {reason}"
    options = plan.backend_options()
    assert (options.device, options.precision, options.engine) == (CPU, plan.precision, None)
    # onnxruntime has no bf16: its auto precision on the CPU is fp32
    onnx = make_plan(info, UpscaleOptions(model="lanczos", backend="onnxruntime"), engine_dir=folder)
    assert (onnx.backend, onnx.precision) == ("onnxruntime", "fp32")


def test_cli_refuses_tensorrt_without_a_gpu_in_one_line(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("checks the message where torch sees no GPU")
    clip = write_clip(tmp_path / "in.mp4", width=64, height=48, frames=2)
    result = CliRunner().invoke(
        app, ["upscale", str(clip), str(tmp_path / "out.mp4"), "-m", "lanczos", "--backend", "tensorrt"]
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.stderr
    assert lines[0].endswith(
        "the tensorrt backend runs on a CUDA GPU only and torch sees none; use --backend torch or auto"
    )
    assert not (tmp_path / "out.mp4").exists()


def test_runs_and_bench_make_the_backend_the_plan_chose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine the plan picked (not the newest in the cache) and --cuda-graph reach the backend."""
    import vsr.pipeline.bench as bench_module
    import vsr.pipeline.plan as plan_module  # RunPlan.restore_stage makes the backend for both
    import vsr.pipeline.runner as runner_module
    from vsr.backends import create_backend

    clip = write_clip(tmp_path / "in.mp4", width=64, height=48, frames=2)
    seen = []

    def recording(name, model, options):  # type: ignore[no-untyped-def]
        seen.append((name, options))
        return create_backend(name, model, options)

    monkeypatch.setattr(plan_module, "create_backend", recording)
    options = UpscaleOptions(model="lanczos", precision="fp32")
    plan = make_plan(probe(clip).video, options)
    runner_module.Pipeline(clip, tmp_path / "out.mp4", options).run()
    bench_module.run_bench(options, input_path=clip, synthetic=None, frames=2, stage_frames=2)
    assert [name for name, _ in seen] == ["torch"] * len(seen) and len(seen) >= 2
    assert all(o == plan.backend_options() for _, o in seen)


def test_cuda_graph_needs_torch_on_cuda_in_one_line(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("checks the message where torch sees no GPU")
    clip = write_clip(tmp_path / "in.mp4", width=64, height=48, frames=2)
    args = ["upscale", str(clip), str(tmp_path / "out.mp4"), "-m", "lanczos", "--cuda-graph"]
    result = CliRunner().invoke(app, args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert lines[0] == (
        "vsr: error: --cuda-graph needs the torch backend on a CUDA device; this run is torch on cpu"
    )
    assert not (tmp_path / "out.mp4").exists()


def test_scan_skips_json_that_is_not_a_manifest(tmp_path: Path) -> None:
    engine = _install(tmp_path, _manifest("m.engine", "1080p"))
    (tmp_path / "notes.json").write_text("{}")
    (found,) = scan_engine_cache(tmp_path)
    assert isinstance(found, CachedEngine) and found.engine == engine
    assert (found.manifest.engine_file, found.manifest.profile_specs) == ("m.engine", ("1080p",))
    assert scan_engine_cache(tmp_path / "absent") == ()
