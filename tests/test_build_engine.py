"""Engine builds: a real TensorRT-RTX build ahead of time on this CPU, the TensorRT 10/11 paths, the CLI.

TensorRT-RTX builds without a GPU, so CI (which installs it with the test extra) really builds
an engine here. Standard TensorRT needs the GPU it builds for; its two precision paths are
checked call by call against a recording stand-in for the ``tensorrt`` module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import onnx
import pytest
import torch
from typer.testing import CliRunner

from vsr.cli import app
from vsr.engines import EngineBuildRequest, GpuInfo, build_engine, check_engine, read_manifest
from vsr.engines import parity as parity_module
from vsr.engines import trt_build as trt_build_module
from vsr.engines.manifest import manifest_path
from vsr.errors import ConfigError, EngineError
from vsr.models import load_model
from vsr.models.compact import SRVGGNetCompact
from vsr.models.descriptor import LoadedModel

runner = CliRunner()
H200 = GpuInfo(name="NVIDIA H200", compute_capability="9.0")


@pytest.fixture(scope="module")
def rtx() -> ModuleType:
    try:
        import tensorrt_rtx
    except ImportError as exc:
        if os.environ.get("CI") and sys.platform == "linux" and os.uname().machine == "x86_64":
            pytest.fail(f"tensorrt-rtx is in the test extra but does not import here: {exc}")
        pytest.skip(f"tensorrt-rtx is not installed ({exc}): pip install tensorrt-rtx")
    return tensorrt_rtx


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny-x2.pth"
    torch.save(SRVGGNetCompact(num_feat=8, num_conv=2, scale=2).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def tiny(checkpoint: Path) -> LoadedModel:
    return load_model(checkpoint)


def _rtx_request(checkpoint: Path, out: Path, **changes: Any) -> EngineBuildRequest:
    base: dict[str, Any] = dict(
        model_source=str(checkpoint),
        precision="fp16",
        profiles=("360p", "min:32x32,opt:64x64,max:128x128"),
        batch=2,
        target="tensorrt-rtx",
        compute_capabilities=("8.6", "8.9"),
        out_dir=out,
    )
    return EngineBuildRequest(**{**base, **changes})


def test_rtx_builds_an_engine_ahead_of_time_on_the_cpu(
    rtx: ModuleType, tiny: LoadedModel, checkpoint: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    built = build_engine(tiny, _rtx_request(checkpoint, tmp_path))
    seconds = time.monotonic() - started
    assert seconds < 60, seconds  # measured ~1 s for this model on the 2-core CI machine
    m = built.manifest
    assert not built.reused and built.path.parent == tmp_path
    data = built.path.read_bytes()
    assert len(data) == m.engine_bytes > 10_000  # a real plan, not a stub
    assert hashlib.sha256(data).hexdigest() == m.engine_sha256
    assert read_manifest(manifest_path(built.path)) == m
    assert built.path.name == (
        f"compact-x2-{m.model_sha256[:12]}-onnx{m.onnx_sha256[:8]}-fp16-360p+32x32-64x64-128x128-b2-"
        f"trtrtx{rtx.__version__}-sm86-sm89.engine"
    )
    assert m.model_sha256 == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert (m.builder, m.builder_version, m.network_typing) == ("tensorrt-rtx", rtx.__version__, "strong")
    assert (m.target_compute_capabilities, m.gpu_name, m.compute_capability) == (("8.6", "8.9"), None, None)
    assert [(p.min, p.opt, p.max) for p in m.profiles] == [
        ((1, 3, 360, 640), (2, 3, 360, 640), (2, 3, 360, 640)),
        ((1, 3, 32, 32), (2, 3, 64, 64), (2, 3, 128, 128)),
    ]
    assert m.profile_specs == ("360p", "min:32x32,opt:64x64,max:128x128") and m.scale == 2
    if not torch.cuda.is_available():
        assert m.parity_psnr_db is None
        assert m.parity_note == "not measured: no CUDA GPU where it was built (built for sm 8.6, 8.9)"
        check = check_engine(built.path)
        assert (check.status, check.reason) == (
            "unchecked",
            "no CUDA GPU here to check it against; it runs on sm 8.6, 8.9",
        )
    assert oct(built.path.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in tmp_path.iterdir()) == [built.path.name, manifest_path(built.path).name]

    mtime = built.path.stat().st_mtime_ns
    again = build_engine(tiny, _rtx_request(checkpoint, tmp_path))
    assert again.reused and again.path == built.path and built.path.stat().st_mtime_ns == mtime
    forced = build_engine(tiny, _rtx_request(checkpoint, tmp_path, force=True))
    assert not forced.reused and forced.path == built.path and forced.manifest.built_at >= m.built_at

    fp32 = build_engine(tiny, _rtx_request(checkpoint, tmp_path, precision="fp32", compute_capabilities=()))
    assert fp32.path != built.path and fp32.path.name.endswith(
        f"-fp32-360p+32x32-64x64-128x128-b2-trtrtx{rtx.__version__}-smdefault.engine"
    )
    assert fp32.manifest.onnx_sha256 != m.onnx_sha256  # built from the fp32 network, not the fp16 one
    assert fp32.path.read_bytes() != data


def test_rtx_refuses_unknown_targets_before_doing_any_work(
    rtx: ModuleType, tiny: LoadedModel, checkpoint: Path, tmp_path: Path
) -> None:
    with pytest.raises(
        ConfigError, match=r"cannot build for compute capability 9\.0; it knows 7\.5, 8\.0, 8\.6"
    ):
        build_engine(tiny, _rtx_request(checkpoint, tmp_path / "out", compute_capabilities=("9.0",)))
    assert not (tmp_path / "out").exists()


def test_a_failed_build_leaves_no_engine_and_no_manifest(
    rtx: ModuleType, tiny: LoadedModel, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_parity(*args: object) -> tuple[float, str]:
        raise EngineError("the built engine does not compute the model")

    monkeypatch.setattr(parity_module, "measure_parity", broken_parity)
    with pytest.raises(EngineError, match="does not compute the model"):
        build_engine(tiny, _rtx_request(checkpoint, tmp_path))
    assert list(tmp_path.iterdir()) == []  # the temporary engine went too


def test_requests_that_cannot_build_are_refused_with_what_to_do(
    tiny: LoadedModel, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = EngineBuildRequest(model_source=str(checkpoint), out_dir=tmp_path)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` fails
    with pytest.raises(
        EngineError, match=r"need the tensorrt module, which is not installed .*pip install 'vsr\[tensorrt\]'"
    ):
        build_engine(tiny, request)
    monkeypatch.setitem(sys.modules, "tensorrt", SimpleNamespace(__version__="10.13.0.35"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EngineError, match=r"needs the CUDA GPU it will run on.*--target tensorrt-rtx"):
        build_engine(tiny, request)
    with pytest.raises(ConfigError, match="--compute-capability is for --target tensorrt-rtx"):
        build_engine(tiny, EngineBuildRequest(model_source="x", compute_capabilities=("8.6",)))
    with pytest.raises(Exception, match="has no engine"):
        build_engine(load_model("bicubic", scale=2), request)
    assert list(tmp_path.iterdir()) == []


class _FakeTensorRT(ModuleType):
    """Just enough of the documented ``tensorrt`` Python API to record what a build calls."""

    def __init__(self, version: str) -> None:
        super().__init__("tensorrt")
        self.__version__ = version
        self.calls: list[tuple[Any, ...]] = []
        fake = self
        major = int(version.split(".")[0])
        flags = {"TF32": 7} if major >= 11 else {"FP16": 0, "TF32": 7}  # TensorRT 11 removed FP16
        self.BuilderFlag = SimpleNamespace(**flags)
        self.NetworkDefinitionCreationFlag = SimpleNamespace(STRONGLY_TYPED=1)

        class ILogger:
            Severity = SimpleNamespace(INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4)

            def __init__(self) -> None:
                pass

        class Config:
            builder_optimization_level = 3

            def set_flag(self, flag: int) -> None:
                fake.calls.append(("set_flag", flag))

            def clear_flag(self, flag: int) -> None:
                fake.calls.append(("clear_flag", flag))

            def add_optimization_profile(self, profile: Any) -> int:
                fake.calls.append(("profile", *profile.shape))
                return 0

            def create_timing_cache(self, data: bytes) -> Any:
                fake.calls.append(("timing_cache", bytes(data)))
                return SimpleNamespace(serialize=lambda: b"timings")

            def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
                return True

        class Builder:
            def __init__(self, logger: Any) -> None:
                pass

            def create_network(self, flags: int) -> Any:
                fake.calls.append(("create_network", flags))
                return SimpleNamespace(get_input=lambda i: SimpleNamespace(name="input"))

            def create_builder_config(self) -> Config:
                return Config()

            def create_optimization_profile(self) -> Any:
                profile = SimpleNamespace(shape=())
                profile.set_shape = lambda name, lo, opt, hi: setattr(profile, "shape", (name, lo, opt, hi))
                return profile

            def build_serialized_network(self, network: Any, config: Config) -> bytes:
                fake.calls.append(("build", config.builder_optimization_level))
                return b"plan for " + fake.__version__.encode()

        class OnnxParser:
            def __init__(self, network: Any, logger: Any) -> None:
                pass

            def parse_from_file(self, path: str) -> bool:
                graph = onnx.load(path).graph
                fake.calls.append(
                    ("parse", onnx.TensorProto.DataType.Name(graph.input[0].type.tensor_type.elem_type))
                )
                return True

        self.ILogger, self.Builder, self.OnnxParser = ILogger, Builder, OnnxParser


@pytest.mark.parametrize(
    ("version", "precision", "expected"),
    [
        # TensorRT 10: weakly typed network from the fp32 ONNX, fp16 by the builder flag
        ("10.13.0.35", "fp16", [("create_network", 0), ("parse", "FLOAT"), ("set_flag", 0)]),
        # TensorRT 11: no FP16 flag; a strongly typed network from the FP16 ONNX network
        ("11.4.0.106", "fp16", [("create_network", 2), ("parse", "FLOAT16")]),
        # fp32 is the reference: TF32 is cleared on both
        ("10.13.0.35", "fp32", [("create_network", 0), ("parse", "FLOAT"), ("clear_flag", 7)]),
        ("11.4.0.106", "fp32", [("create_network", 2), ("parse", "FLOAT"), ("clear_flag", 7)]),
    ],
)
def test_tensorrt_10_and_11_take_their_documented_precision_paths(
    version: str,
    precision: str,
    expected: list[tuple[Any, ...]],
    tiny: LoadedModel,
    checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _FakeTensorRT(version)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(trt_build_module, "current_gpu", lambda: H200)
    monkeypatch.setattr(parity_module, "measure_parity", lambda *a: (57.25, "measured (stand-in)"))
    request = EngineBuildRequest(
        model_source=str(checkpoint),
        precision=precision,
        profiles=("720p",),
        batch=2,
        out_dir=tmp_path,
        optimization_level=5,  # type: ignore[arg-type]
    )
    built = build_engine(tiny, request)
    assert fake.calls[0] == ("create_network", expected[0][1]) and ("timing_cache", b"") in fake.calls
    steps = [c for c in fake.calls if c[0] in ("create_network", "parse", "set_flag", "clear_flag")]
    assert steps == expected
    assert ("profile", "input", (1, 3, 720, 1280), (2, 3, 720, 1280), (2, 3, 720, 1280)) in fake.calls
    assert fake.calls[-1] == ("build", 5)
    m = built.manifest
    assert built.path.read_bytes() == f"plan for {version}".encode()
    assert (m.gpu_name, m.compute_capability, m.parity_psnr_db) == ("NVIDIA H200", "9.0", 57.25)
    assert m.network_typing == ("weak" if version.startswith("10") else "strong")
    assert built.path.name.endswith(f"-{precision}-720p-b2-trt{version}-nvidia-h200-sm90.engine")
    # the timing cache persists under the engine folder for the next build on this GPU and version
    cache = tmp_path / f"timing-trt{version}-nvidia-h200-sm90.cache"
    assert cache.read_bytes() == b"timings"
    build_engine(tiny, dataclasses.replace(request, force=True))
    assert ("timing_cache", b"timings") in fake.calls


def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_builds_lists_and_flags_broken_engines(rtx: ModuleType, checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "engines"
    code, stdout, stderr = _cli(
        "build-engine", str(checkpoint), "--target", "tensorrt-rtx", "--profile", "360p",
        "--compute-capability", "8.9,8.6", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    (engine,) = out.glob("*.engine")
    assert stdout.startswith(f"built {engine} (") and "TensorRT-RTX" in stdout and "for sm 8.6, 8.9" in stdout
    code, stdout, _ = _cli("engines", str(out))
    assert code == 0
    (line,) = stdout.splitlines()
    assert line.startswith(
        f"{engine.name}  tiny-x2.pth (compact x2)  fp16  360p b1  TensorRT-RTX {rtx.__version__}  "
    )
    if not torch.cuda.is_available():
        assert line.endswith("unchecked: no CUDA GPU here to check it against; it runs on sm 8.6, 8.9")
    engine.write_bytes(engine.read_bytes()[:-1])
    code, stdout, _ = _cli("engines", str(out), "--rebuild")
    assert code == 0
    first, second = stdout.splitlines()
    assert first.endswith("broken: the file is not the engine its manifest describes (sha256 differs)")
    assert second == (
        f"  rebuild: vsr build-engine {checkpoint} --precision fp16 --profile 360p --batch 1 --target tensorrt-rtx "
        f"--out {out} --compute-capability 8.6,8.9"
    )


@pytest.mark.parametrize(
    ("args", "code", "match"),
    [
        (
            ["--target", "tensorrt", "--compute-capability", "8.6"],
            2,
            "--compute-capability is for --target tensorrt-rtx",
        ),
        (["--profile", "huge"], 2, "bad --profile 'huge'"),
        (["--target", "onnx"], 2, "--target must be tensorrt or tensorrt-rtx"),
        (["--precision", "bf16"], 2, "--precision must be fp16 or fp32"),
        (["--target", "tensorrt-rtx", "--opt-level", "9"], 2, "--opt-level must be 0 to 5"),
    ],
)
def test_cli_errors_are_one_line(
    checkpoint: Path, tmp_path: Path, args: list[str], code: int, match: str
) -> None:
    exit_code, _, stderr = _cli("build-engine", str(checkpoint), "--out", str(tmp_path / "e"), *args)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert exit_code == code and len(lines) == 1 and match in lines[0], stderr
    assert not (tmp_path / "e").exists()


def test_cli_engines_on_a_missing_folder(tmp_path: Path) -> None:
    code, _, stderr = _cli("engines", str(tmp_path / "nope"))
    assert (
        code == 1
        and stderr.strip()
        == f"vsr: error: engine folder {tmp_path / 'nope'} does not exist; build an engine into it with vsr build-engine"
    )
    (tmp_path / "empty").mkdir()
    code, stdout, stderr = _cli("engines", str(tmp_path / "empty"))
    assert (code, stdout, stderr.strip()) == (0, "", f"no engines in {tmp_path / 'empty'}")
