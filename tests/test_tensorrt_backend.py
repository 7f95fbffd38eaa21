"""The tensorrt and tensorrt-rtx backends: selection and refusals here, real execution on a GPU.

Everything up to deserialising the engine runs without a GPU (the GPU is a stand-in where one
is needed to get that far); the test that runs engines is marked ``gpu`` and ``tensorrt``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch

from vsr.backends import BackendOptions, available_backends, create_backend, tensorrt_backend
from vsr.backends.tensorrt_backend import TensorRTBackend, runtime_cache_path, select_profile
from vsr.engines import EngineBuildRequest, GpuInfo, build_engine, read_manifest
from vsr.engines import targets as targets_module
from vsr.engines.manifest import manifest_path
from vsr.engines.parity import psnr
from vsr.errors import DeviceError, EngineError
from vsr.models import load_model
from vsr.models.compact import SRVGGNetCompact
from vsr.models.descriptor import LoadedModel

CUDA = torch.device("cuda", 0)
RTX4090 = GpuInfo(name="NVIDIA GeForce RTX 4090", compute_capability="8.9")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "tiny-x2.pth"
    torch.save(SRVGGNetCompact(num_feat=8, num_conv=2, scale=2).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def tiny(checkpoint: Path) -> LoadedModel:
    return load_model(checkpoint)


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> GpuInfo:
    """torch "sees" an RTX 4090: enough to get the backend to its engine lookup on a CPU machine."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(targets_module, "current_gpu", lambda device=None: RTX4090)
    return RTX4090


@pytest.fixture(scope="module")
def rtx_engine(tiny: LoadedModel, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx is not installed: pip install tensorrt-rtx")
    request = EngineBuildRequest(
        model_source=str(checkpoint),
        profiles=("min:16x16,opt:64x64,max:128x128",),
        batch=2,
        target="tensorrt-rtx",
        compute_capabilities=("8.6", "8.9"),
        out_dir=tmp_path_factory.mktemp("engines"),
    )
    return build_engine(tiny, request).path


def test_both_backends_are_registered_and_import_nothing_heavy() -> None:
    assert {"tensorrt", "tensorrt-rtx"} <= set(available_backends())
    code = "import sys, vsr.backends, vsr.engines; print(sorted(m for m in ('tensorrt', 'tensorrt_rtx', 'onnx') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["tensorrt", "tensorrt-rtx"])
def test_backends_run_only_on_cuda_in_fp16_or_fp32(
    tiny: LoadedModel, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(
        DeviceError,
        match=f"the {name} backend runs on a CUDA GPU only, not cpu; use --backend torch or onnxruntime",
    ):
        create_backend(name, tiny, BackendOptions(device=torch.device("cpu"), precision="fp16"))
    with pytest.raises(DeviceError, match="runs fp16 or fp32 engines, not bf16"):
        create_backend(name, tiny, BackendOptions(device=CUDA, precision="bf16"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="needs a CUDA GPU and torch sees none"):
        create_backend(name, tiny, BackendOptions(device=CUDA, precision="fp16"))


def test_missing_modules_say_how_to_install(
    tiny: LoadedModel, fake_gpu: GpuInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)
    options = BackendOptions(device=CUDA, precision="fp16")
    with pytest.raises(
        DeviceError,
        match=r"need the tensorrt module, which is not installed .*; pip install 'vsr\[tensorrt\]'",
    ):
        create_backend("tensorrt", tiny, options)
    with pytest.raises(DeviceError, match=r"need the tensorrt_rtx module.*; pip install tensorrt-rtx$"):
        create_backend("tensorrt-rtx", tiny, options)


def test_no_engine_names_the_build_command(tiny: LoadedModel, fake_gpu: GpuInfo, tmp_path: Path) -> None:
    pytest.importorskip("tensorrt_rtx")
    with pytest.raises(EngineError) as info:
        TensorRTBackend(
            tiny, BackendOptions(device=CUDA, precision="fp32"), builder="tensorrt-rtx", engine_dir=tmp_path
        )
    assert str(info.value) == (
        f"no tensorrt-rtx engine for tiny-x2.pth (fp32) in {tmp_path}; build one: vsr build-engine tiny-x2.pth "
        f"--precision fp32 --profile 1080p --target tensorrt-rtx --out {tmp_path}"
    )


def test_stale_and_foreign_engines_are_refused_with_the_rebuild(
    tiny: LoadedModel, checkpoint: Path, rtx_engine: Path, fake_gpu: GpuInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tensorrt_rtx

    options = BackendOptions(device=CUDA, precision="fp16")
    folder = rtx_engine.parent
    rebuild = (
        f"vsr build-engine {checkpoint} --precision fp16 --profile min:16x16,opt:64x64,max:128x128 --batch 2 "
        f"--target tensorrt-rtx --out {folder} --compute-capability"
    )
    monkeypatch.setattr(tensorrt_rtx, "__version__", "1.8.0.1")  # as if TensorRT-RTX had been upgraded
    with pytest.raises(EngineError) as stale:
        TensorRTBackend(tiny, options, builder="tensorrt-rtx", engine_dir=folder)
    assert str(stale.value).startswith(f"engine {rtx_engine} is stale: it was built by TensorRT-RTX ")
    assert "and TensorRT-RTX 1.8.0.1 is installed" in str(
        stale.value
    ) and f"rebuild it: {rebuild} 8.6,8.9" in str(stale.value)
    monkeypatch.undo()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    turing = GpuInfo(name="NVIDIA GeForce RTX 2080", compute_capability="7.5")
    monkeypatch.setattr(targets_module, "current_gpu", lambda device=None: turing)
    with pytest.raises(EngineError) as foreign:
        TensorRTBackend(tiny, options, builder="tensorrt-rtx", engine_path=rtx_engine)
    assert str(foreign.value).endswith(
        f"this GPU is NVIDIA GeForce RTX 2080 (sm 7.5); rebuild it: {rebuild} 7.5,8.6,8.9"
    )


def test_inputs_outside_every_profile_name_the_build_that_covers_them(rtx_engine: Path) -> None:
    m = read_manifest(manifest_path(rtx_engine))
    assert m.profiles[0].max == (2, 3, 128, 128)
    assert select_profile(m, rtx_engine, (2, 3, 128, 96)) == 0
    with pytest.raises(EngineError) as size:
        select_profile(m, rtx_engine, (1, 3, 720, 1280))
    assert "input 1x3x720x1280 (N x C x H x W) is outside every profile of engine" in str(size.value)
    assert "(16x16 to 128x128 (opt 64x64), batch 1-2)" in str(size.value)
    assert "--profile min:16x16,opt:64x64,max:128x128 --profile 1280x720 --batch 2 " in str(size.value)
    with pytest.raises(EngineError) as batch:
        select_profile(m, rtx_engine, (4, 3, 64, 64))
    # the size is covered: only the batch has to grow
    assert "--profile min:16x16,opt:64x64,max:128x128 --batch 4 --target" in str(batch.value)


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.parametrize("builder", ["tensorrt", "tensorrt-rtx"])
@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_engines_run_on_the_gpu_and_match_pytorch(
    builder: str, precision: str, tiny: LoadedModel, checkpoint: Path, tmp_path: Path
) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    module: ModuleType = pytest.importorskip("tensorrt" if builder == "tensorrt" else "tensorrt_rtx")
    gpu = targets_module.current_gpu()
    assert gpu is not None
    targets: tuple[str, ...] = ()
    if builder == "tensorrt-rtx":
        if gpu.compute_capability not in targets_module.rtx_known_targets(module):
            pytest.skip(f"TensorRT-RTX cannot target this GPU (sm {gpu.compute_capability})")
        targets = (gpu.compute_capability,)
    request = EngineBuildRequest(
        model_source=str(checkpoint),
        precision=precision,  # type: ignore[arg-type]
        profiles=("min:16x16,opt:64x64,max:128x128", "96x80"),
        batch=2,
        target=builder,  # type: ignore[arg-type]
        compute_capabilities=targets,
        out_dir=tmp_path,
    )
    built = build_engine(tiny, request)
    floor = 45.0 if precision == "fp16" else 60.0
    assert built.manifest.parity_psnr_db is not None and built.manifest.parity_psnr_db >= floor
    backend = create_backend(builder, tiny, BackendOptions(device=CUDA, precision=precision))  # type: ignore[arg-type]
    assert isinstance(backend, TensorRTBackend) and backend.engine_path == built.path
    gen = torch.Generator().manual_seed(3)
    # both profiles, switching back and forth, and a batch of 2
    reference = copy.deepcopy(tiny.module).to(CUDA)  # the fixture's module stays on the CPU
    for shape in ((1, 3, 48, 40), (2, 3, 80, 96), (2, 3, 128, 128), (1, 3, 80, 96)):
        x = torch.rand(shape, generator=gen).to(CUDA)
        y = backend.run(x)
        assert y.dtype == torch.float32 and y.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
        with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            ref = reference(x)
        assert psnr(y, ref) >= floor
    if builder == "tensorrt-rtx":
        assert runtime_cache_path(built.path).stat().st_size > 0
    with pytest.raises(EngineError, match="outside every profile"):
        backend.run(torch.rand(1, 3, 256, 256, device=CUDA))


class _FakeRtx(ModuleType):
    """The documented ``tensorrt_rtx`` runtime calls, recorded; the "GPU" work is a no-op on CPU tensors."""

    def __init__(self, version: str) -> None:
        super().__init__("tensorrt_rtx")
        self.__version__ = version
        self.calls: list[tuple[object, ...]] = []
        fake = self
        self.TensorIOMode = SimpleNamespace(INPUT="in", OUTPUT="out")
        self.DataType = SimpleNamespace(FLOAT="f32", HALF="f16")
        self.EngineValidity = SimpleNamespace(VALID=0, SUBOPTIMAL=1, INVALID=2)
        self.EngineInvalidityDiagnostics = SimpleNamespace(__members__={"UNSUPPORTED_CC": 2})
        self.ComputeCapability = SimpleNamespace(__members__={"SM86": 0, "SM89": 1})

        class ILogger:
            Severity = SimpleNamespace(INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4)

            def __init__(self) -> None:
                pass

        class Context:
            active_optimization_profile = 0

            def set_optimization_profile_async(self, index: int, stream: int) -> bool:
                fake.calls.append(("profile", index, stream))
                self.active_optimization_profile = index
                return True

            def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
                self.shape = shape
                fake.calls.append(("shape", name, shape))
                return True

            def get_tensor_shape(self, name: str) -> tuple[int, ...]:
                n, c, h, w = self.shape
                return (n, c, 2 * h, 2 * w)

            def set_tensor_address(self, name: str, ptr: int) -> None:
                fake.calls.append(("address", name))

            def execute_async_v3(self, stream: int) -> bool:
                fake.calls.append(("execute", stream))
                return True

        class Cache:
            def deserialize(self, blob: bytes) -> bool:
                fake.calls.append(("cache_in", bytes(blob)))
                return True

            def serialize(self) -> bytes:
                return b"compiled kernels"

        class Engine:
            num_io_tensors = 2

            def get_tensor_name(self, i: int) -> str:
                return ["input", "output"][i]

            def get_tensor_mode(self, name: str) -> str:
                return "in" if name == "input" else "out"

            def get_tensor_dtype(self, name: str) -> str:
                return "f16"

            def create_runtime_config(self) -> object:
                return SimpleNamespace(
                    create_runtime_cache=Cache, set_runtime_cache=lambda c: fake.calls.append(("cache_set",))
                )

            def create_execution_context(self, config: object) -> Context:
                return Context()

        class Runtime:
            def __init__(self, logger: object) -> None:
                pass

            def get_engine_validity(self, data: bytes) -> tuple[int, int]:
                return fake.validity

            def deserialize_cuda_engine(self, data: bytes) -> Engine:
                fake.calls.append(("deserialize", len(data)))
                return Engine()

        self.validity = (0, 0)
        self.ILogger, self.Runtime = ILogger, Runtime


def test_the_run_path_makes_the_documented_calls_in_order(
    tiny: LoadedModel, rtx_engine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = read_manifest(manifest_path(rtx_engine))
    fake = _FakeRtx(m.builder_version)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", fake)
    # a CPU tensor stands in for device memory: the stand-in context never reads it
    monkeypatch.setattr(tensorrt_backend, "_check_options", lambda options, builder: None)
    monkeypatch.setattr(targets_module, "current_gpu", lambda device=None: RTX4090)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    stream = SimpleNamespace(cuda_stream=77, synchronize=lambda: fake.calls.append(("sync",)))
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: stream)
    cache = runtime_cache_path(rtx_engine)
    cache.write_bytes(b"earlier kernels")
    backend = TensorRTBackend(
        tiny,
        BackendOptions(device=torch.device("cpu"), precision="fp16"),
        builder="tensorrt-rtx",
        engine_dir=rtx_engine.parent,
    )
    assert backend.engine_path == rtx_engine
    assert fake.calls == [("deserialize", m.engine_bytes), ("cache_in", b"earlier kernels"), ("cache_set",)]
    fake.calls.clear()
    y = backend.run(torch.rand(2, 3, 64, 48))
    assert y.dtype == torch.float32 and y.shape == (2, 3, 128, 96)
    assert fake.calls == [
        ("shape", "input", (2, 3, 64, 48)), ("address", "input"), ("address", "output"), ("execute", 77), ("sync",),
    ]  # fmt: skip
    assert cache.read_bytes() == b"compiled kernels"  # saved after the first run of a new shape
    fake.calls.clear()
    backend.run(torch.rand(2, 3, 64, 48))
    assert ("sync",) not in fake.calls  # a shape seen before compiles nothing new
    fake.validity = (2, 2)
    with pytest.raises(
        EngineError,
        match=r"cannot run engine .* on this GPU \(unsupported cc\); rebuild it: vsr build-engine",
    ):
        TensorRTBackend(
            tiny,
            BackendOptions(device=torch.device("cpu"), precision="fp16"),
            builder="tensorrt-rtx",
            engine_dir=rtx_engine.parent,
        )


def test_the_stand_in_uses_only_what_the_real_bindings_have() -> None:
    # the call-order test above runs the backend against _FakeRtx: every method, property and enum
    # member that stand-in offers must exist in the installed tensorrt_rtx, or that test proves nothing
    trt = pytest.importorskip(
        "tensorrt_rtx", reason="tensorrt-rtx is not installed: pip install tensorrt-rtx"
    )
    fake = _FakeRtx("0")
    runtime = fake.Runtime(None)
    engine = runtime.deserialize_cuda_engine(b"")
    config = engine.create_runtime_config()
    stand_ins = {
        trt.Runtime: type(runtime),
        trt.ICudaEngine: type(engine),
        trt.IRuntimeConfig: config,
        trt.IRuntimeCache: config.create_runtime_cache,
        trt.IExecutionContext: type(engine.create_execution_context(config)),
    }
    missing = [
        f"{real.__name__}.{name}"
        for real, stand_in in stand_ins.items()
        for name in vars(stand_in)
        if not name.startswith("_") and not hasattr(real, name)
    ]
    enums = {
        "TensorIOMode": vars(fake.TensorIOMode),
        "DataType": vars(fake.DataType),
        "EngineValidity": vars(fake.EngineValidity),
        "EngineInvalidityDiagnostics": fake.EngineInvalidityDiagnostics.__members__,
        "ComputeCapability": fake.ComputeCapability.__members__,
        "ILogger.Severity": vars(fake.ILogger.Severity),
    }
    for path, members in enums.items():
        real_enum = trt
        for part in path.split("."):
            real_enum = getattr(real_enum, part)
        missing += [f"{path}.{name}" for name in members if not hasattr(real_enum, name)]
    assert missing == []
