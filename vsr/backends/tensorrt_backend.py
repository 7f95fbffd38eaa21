"""TensorRT and TensorRT-RTX backends: a cached engine (`vsr build-engine`) run on torch CUDA tensors.

The engine is found in the cache by its manifest (same weights, precision and builder, and valid
for the installed runtime and this GPU, see `vsr.engines.validate`); a missing, stale or foreign
one is refused with the command that builds it. Execution follows TensorRT's documented
name-based I/O: ``set_input_shape``, ``set_tensor_address`` with the data pointers of torch
tensors, and ``execute_async_v3`` on the current torch CUDA stream, so the engine is ordered with
the work around it without extra synchronisation. TensorRT-RTX compiles kernels on the GPU at
run time; its runtime cache is loaded from, and saved to, a file beside the engine, so the next
run starts without compiling again.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from vsr.backends.base import Backend, BackendOptions
from vsr.engines import targets as engine_targets
from vsr.engines.manifest import EngineManifest, rebuild_command
from vsr.engines.profiles import choose_profile
from vsr.engines.targets import Builder
from vsr.engines.validate import check_engine, find_engine
from vsr.errors import DeviceError, EngineError
from vsr.models.descriptor import LoadedModel, Precision

__all__ = [
    "ENGINE_DIR",
    "TensorRTBackend",
    "create_tensorrt_backend",
    "create_tensorrt_rtx_backend",
    "runtime_cache_path",
    "select_profile",
]

log = logging.getLogger(__name__)

ENGINE_DIR = Path("engines")  # relative to the working directory, as build-engine's --out default
_RUNTIME_CACHE_SUFFIX = ".rtxcache"


def runtime_cache_path(engine: Path) -> Path:
    return engine.with_suffix(_RUNTIME_CACHE_SUFFIX)


def select_profile(manifest: EngineManifest, engine_path: Path, shape: tuple[int, ...]) -> int:
    """The optimization profile that runs ``shape``, or an EngineError with the build that covers it."""
    index = choose_profile(manifest.profiles, shape)
    if index is None:
        n, h, w = (shape[0], *shape[-2:]) if len(shape) == 4 else (1, 0, 0)
        covered = any(p.covers((p.max[0], *shape[1:])) for p in manifest.profiles)
        accepted = "; ".join(p.describe() for p in manifest.profiles)
        extra = None if covered else f"{w}x{h}"  # covered but for the batch: only --batch grows
        command = rebuild_command(manifest, engine_path.parent, extra_profile=extra, batch=n)
        raise EngineError(
            f"input {'x'.join(map(str, shape))} (N x C x H x W) is outside every profile of engine "
            f"{engine_path.name} ({accepted}); build one that covers it: {command}"
        )
    return index


def _check_options(options: BackendOptions, builder: Builder) -> None:
    """What can be refused before anything is imported: precision and device."""
    if options.precision not in ("fp16", "fp32"):
        raise DeviceError(
            f"the {builder} backend runs fp16 or fp32 engines, not {options.precision}; "
            "use --precision fp16, or --backend torch for bf16"
        )
    if options.device.type != "cuda":
        raise DeviceError(
            f"the {builder} backend runs on a CUDA GPU only, not {options.device}; "
            "use --backend torch or onnxruntime on the CPU"
        )
    if not torch.cuda.is_available():
        raise DeviceError(f"the {builder} backend needs a CUDA GPU and torch sees none; use --backend torch")


class TensorRTBackend:
    """Runs a TensorRT (``builder="tensorrt"``) or TensorRT-RTX engine on one CUDA GPU.

    One execution context serves every call; a lock keeps its shape, profile and address
    settings from being interleaved by two threads. Nothing of a call is kept on the object.
    """

    def __init__(
        self,
        model: LoadedModel,
        options: BackendOptions,
        *,
        builder: Builder = "tensorrt",
        engine_dir: str | Path = ENGINE_DIR,
        engine_path: Path | None = None,
        manifest: EngineManifest | None = None,
        runtime_cache: bool = True,
    ) -> None:
        """``engine_path`` picks the engine (default: the newest valid one in ``engine_dir``);
        with ``manifest`` too, the pair is trusted as is (the build's own parity check)."""
        _check_options(options, builder)
        from vsr.engines.onnx_export import model_fingerprint

        trt = engine_targets.import_builder(builder, error=DeviceError)
        self.name: str = builder
        self.device = options.device
        self.precision: Precision = options.precision
        if manifest is None:
            environment = engine_targets.Environment(
                builder=builder,
                version=str(trt.__version__),
                gpu=engine_targets.current_gpu(self.device),
                known_targets=engine_targets.rtx_known_targets(trt) if builder == "tensorrt-rtx" else (),
            )
            sha = model_fingerprint(model)
            if engine_path is not None:
                check = check_engine(Path(engine_path), environment=environment, model_sha256=sha)
                if not check.valid:
                    raise EngineError(check.refusal())
            else:
                check = find_engine(
                    Path(engine_dir),
                    builder=builder,
                    model_source=model.descriptor.name,
                    model_sha256=sha,
                    precision=options.precision,
                    environment=environment,
                )
            if check.manifest is None:  # a valid check always has one
                raise EngineError(check.refusal())
            engine_path, manifest = check.engine, check.manifest
        elif engine_path is None:
            raise ValueError("a manifest needs its engine_path")
        if manifest.precision != options.precision:
            raise EngineError(f"engine {engine_path} is {manifest.precision}, not {options.precision}")
        self.engine_path = Path(engine_path)
        self.manifest = manifest
        self._trt = trt
        self._lock = threading.Lock()
        self._runtime_cache_file = runtime_cache_path(self.engine_path) if runtime_cache else None
        self._shapes_seen: set[tuple[int, ...]] = set()
        with torch.cuda.device(self.device):
            self._load(trt)

    def _load(self, trt: ModuleType) -> None:
        logger = engine_targets.builder_logger(trt)
        logger.clear()
        self._runtime = trt.Runtime(logger)
        data = self.engine_path.read_bytes()
        if self.name == "tensorrt-rtx":
            self._check_rtx_validity(trt, data)
        engine = self._runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise EngineError(
                f"{self.name} could not load engine {self.engine_path} ({logger.last_error('no reason logged')}); "
                f"rebuild it: {rebuild_command(self.manifest, self.engine_path.parent)}"
            )
        self._engine: Any = engine
        self._cache: Any = None
        if self.name == "tensorrt-rtx":
            config = engine.create_runtime_config()
            self._cache = config.create_runtime_cache()
            self._load_runtime_cache()
            config.set_runtime_cache(self._cache)
            context = engine.create_execution_context(config)
        else:
            context = engine.create_execution_context()
        if context is None:
            raise EngineError(
                f"{self.name} could not create an execution context for {self.engine_path} "
                f"({logger.last_error('no reason logged')}); is the GPU out of memory?"
            )
        self._context: Any = context
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise EngineError(
                f"engine {self.engine_path} has inputs {inputs} and outputs {outputs}, not one of each"
            )
        self._input, self._output = inputs[0], outputs[0]
        dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
        found = engine.get_tensor_dtype(self._input), engine.get_tensor_dtype(self._output)
        if not all(t in dtypes for t in found):
            raise EngineError(f"engine {self.engine_path} has I/O types {found}; vsr builds fp32 or fp16 I/O")
        self._in_dtype, self._out_dtype = (dtypes[t] for t in found)

    def _check_rtx_validity(self, trt: ModuleType, data: bytes) -> None:
        """TensorRT-RTX's header check says why an engine cannot load here, before loading it."""
        validity, diagnostics = self._runtime.get_engine_validity(data)
        if validity == trt.EngineValidity.INVALID:
            flags = trt.EngineInvalidityDiagnostics.__members__.items()
            why = ", ".join(name.lower().replace("_", " ") for name, flag in flags if diagnostics & int(flag))
            raise EngineError(
                f"TensorRT-RTX {trt.__version__} cannot run engine {self.engine_path} on this GPU "
                f"({why or 'no reason given'}); rebuild it: "
                f"{rebuild_command(self.manifest, self.engine_path.parent)}"
            )
        if validity == trt.EngineValidity.SUBOPTIMAL:
            log.warning(
                "engine %s runs on this GPU but not at its best; rebuild it for this GPU", self.engine_path
            )

    def _load_runtime_cache(self) -> None:
        path = self._runtime_cache_file
        if path is None or not path.is_file():
            return
        # deserialize() checks the blob against this GPU, driver and TensorRT-RTX and loads
        # nothing on a mismatch: the kernels are then compiled again and the file replaced
        if not self._cache.deserialize(path.read_bytes()):
            log.info("runtime cache %s was made for another GPU or version; compiling afresh", path)

    def _save_runtime_cache(self) -> None:
        if self._runtime_cache_file is None or self._cache is None:
            return
        from vsr.engines._files import write_atomically

        try:
            write_atomically(bytes(self._cache.serialize()), self._runtime_cache_file)
        except OSError as exc:  # a read-only engine cache still runs, it only compiles every time
            log.warning("cannot save the runtime cache %s (%s)", self._runtime_cache_file, exc)

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        shape = tuple(int(s) for s in batch.shape)
        index = select_profile(self.manifest, self.engine_path, shape)
        with self._lock, torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device)
            x = batch.to(device=self.device, dtype=self._in_dtype).contiguous()  # queued on ``stream``
            context = self._context
            # the profile switch is queued on the stream the engine runs on: ordered without events
            if context.active_optimization_profile != index and not context.set_optimization_profile_async(
                index, stream.cuda_stream
            ):
                raise EngineError(f"engine {self.engine_path.name} refused to switch to profile {index}")
            if not context.set_input_shape(self._input, shape):
                raise EngineError(f"engine {self.engine_path.name} refused input shape {shape}")
            y = torch.empty(
                tuple(context.get_tensor_shape(self._output)), device=self.device, dtype=self._out_dtype
            )
            context.set_tensor_address(self._input, x.data_ptr())
            context.set_tensor_address(self._output, y.data_ptr())
            # ``x`` may be freed when this returns: the caching allocator hands its memory only
            # to work queued later on this same stream, so the engine reads it first
            if not context.execute_async_v3(stream.cuda_stream):
                raise EngineError(f"{self.name} failed to run engine {self.engine_path.name}; see the log")
            if self._cache is not None and shape not in self._shapes_seen:
                # a new shape compiled new kernels; they are in the cache once the run is done
                self._shapes_seen.add(shape)
                stream.synchronize()
                self._save_runtime_cache()
        return y.to(torch.float32)


def create_tensorrt_backend(model: LoadedModel, options: BackendOptions) -> Backend:
    return TensorRTBackend(model, options, builder="tensorrt", engine_path=options.engine)


def create_tensorrt_rtx_backend(model: LoadedModel, options: BackendOptions) -> Backend:
    return TensorRTBackend(model, options, builder="tensorrt-rtx", engine_path=options.engine)
