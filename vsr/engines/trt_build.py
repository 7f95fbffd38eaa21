"""`build_engine`: a loaded model to a TensorRT or TensorRT-RTX engine in the engine cache.

Steps: export the model to ONNX (`export_onnx`, dynamic batch/height/width), parse it with the
builder's OnnxParser, add one optimization profile per requested shape range, build the
serialized network, write it under a temporary name, measure parity against PyTorch fp32 when a
GPU can run it, write the manifest, then rename the engine onto its final name.

Precision follows what each TensorRT documents:

- TensorRT 11 and TensorRT-RTX: strongly typed networks only (BuilderFlag.FP16 is gone), so an
  fp16 engine is built from the FP16 ONNX network and an fp32 one from the fp32 network.
- TensorRT 10: a weakly typed network parsed from the fp32 ONNX, with BuilderFlag.FP16 set for
  fp16 (TensorRT then picks fp16 or fp32 per layer, and the engine's input and output stay fp32).
- fp32 engines clear BuilderFlag.TF32: they are the accuracy reference and must compute in fp32.

Standard TensorRT builds on, and for, the CUDA GPU of this machine and keeps a timing cache per
version and GPU under the engine folder, so a rebuild with other profiles reuses the kernel
timings. TensorRT-RTX builds ahead of time without a GPU for a list of compute capabilities;
timing caches are no-ops there (deprecated in TensorRT-RTX 1.2), its kernels are compiled on the
user's GPU at run time and kept in the backend's runtime cache.
"""

from __future__ import annotations

import datetime
import logging
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from vsr import __version__
from vsr.engines._files import partial_file, publish, sha256_file, write_atomically
from vsr.engines.manifest import (
    EngineManifest,
    EnginePrecision,
    engine_file_name,
    rtx_device_tag,
    write_manifest,
)
from vsr.engines.onnx_export import DEFAULT_OPSET, export_onnx, model_fingerprint
from vsr.engines.profiles import ShapeProfile, parse_profiles
from vsr.engines.targets import (
    BUILDERS,
    Builder,
    GpuInfo,
    builder_logger,
    builder_tag,
    current_gpu,
    display_name,
    import_builder,
    major_version,
    rtx_compute_capability,
)
from vsr.engines.validate import check_engine
from vsr.errors import ConfigError, EngineError, ModelError, OutputError
from vsr.models.classic import CLASSIC_KERNELS
from vsr.models.descriptor import LoadedModel

__all__ = ["BuiltEngine", "EngineBuildRequest", "build_engine"]

log = logging.getLogger(__name__)

MAX_OPTIMIZATION_LEVEL = 5  # TensorRT's and TensorRT-RTX's documented maximum
Typing = Literal["strong", "weak"]


@dataclass(frozen=True, kw_only=True)
class EngineBuildRequest:
    """What `vsr build-engine` asks for."""

    model_source: str  # the checkpoint path or model name, as the rebuild command will name it
    precision: EnginePrecision = "fp16"
    profiles: tuple[str, ...] = ("1080p",)
    batch: int = 1
    target: Builder = "tensorrt"
    compute_capabilities: tuple[str, ...] = ()  # tensorrt-rtx only; () = the builder's default targets
    out_dir: Path = Path("engines")
    optimization_level: int = 3  # the builders' default
    force: bool = False  # rebuild even when a valid engine of the same identity exists


@dataclass(frozen=True, kw_only=True)
class BuiltEngine:
    path: Path
    manifest: EngineManifest
    reused: bool  # True: a valid engine of the same identity was already there


def _check_request(model: LoadedModel, request: EngineBuildRequest) -> None:
    d = model.descriptor
    if request.target not in BUILDERS:
        raise ConfigError(f"unknown --target {request.target!r}; use {' or '.join(BUILDERS)}")
    if request.precision not in ("fp16", "fp32"):
        raise ConfigError(f"engines are built in fp16 or fp32, not {request.precision!r}")
    if request.precision not in d.precisions:
        raise ModelError(
            f"model {d.name} does not support {request.precision}; build it with --precision fp32"
        )
    if d.architecture in CLASSIC_KERNELS:
        raise ModelError(
            f"the classic {d.architecture} resizer has no engine (its resize matrices depend on the frame size); "
            "run it with the torch backend"
        )
    if getattr(d, "task", "sr") != "sr":
        raise ModelError(f"model {d.name} is not a super-resolution model; engines take SR models only")
    if not 0 <= request.optimization_level <= MAX_OPTIMIZATION_LEVEL:
        raise ConfigError(
            f"--opt-level must be 0 to {MAX_OPTIMIZATION_LEVEL}, got {request.optimization_level}"
        )
    if request.compute_capabilities and request.target != "tensorrt-rtx":
        raise ConfigError(
            "--compute-capability is for --target tensorrt-rtx; TensorRT builds for the GPU it runs on"
        )


def _typing(builder: Builder, version: str) -> Typing:
    if builder == "tensorrt-rtx":
        return "strong"
    major = major_version(version)
    if major < 10:
        raise EngineError(
            f"TensorRT {version} is too old; vsr builds with TensorRT 10 or 11: pip install 'vsr[tensorrt]'"
        )
    return "weak" if major == 10 else "strong"


def _build_gpu(builder: Builder) -> GpuInfo | None:
    gpu = current_gpu()
    if builder == "tensorrt" and gpu is None:
        raise EngineError(
            "building a TensorRT engine needs the CUDA GPU it will run on, and torch sees none here; "
            "build ahead of time without a GPU with --target tensorrt-rtx"
        )
    return gpu


def build_engine(model: LoadedModel, request: EngineBuildRequest) -> BuiltEngine:
    """Build (or find already built) the engine ``request`` describes; return where it is."""
    _check_request(model, request)
    d = model.descriptor
    profiles = parse_profiles(
        request.profiles, size_multiple=d.size_multiple, channels=d.in_channels, batch=request.batch
    )
    trt = import_builder(request.target)
    version = str(trt.__version__)
    typing = _typing(request.target, version)
    gpu = _build_gpu(request.target)
    targets = request.compute_capabilities
    for cc in targets:
        rtx_compute_capability(trt, cc)  # refuse unknown targets before the export
    # TensorRT 10's fp16 comes from a builder flag on the fp32 network (see the module docstring)
    onnx_precision: EnginePrecision = request.precision if typing == "strong" else "fp32"
    out_dir = request.out_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the engine folder {out_dir} ({exc.strerror or exc})") from None
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vsr-engine-") as tmp:
        onnx_path = export_onnx(
            model, Path(tmp) / "model.onnx", precision=onnx_precision, opset=DEFAULT_OPSET
        )
        onnx_sha256 = sha256_file(onnx_path)
        model_sha256 = model_fingerprint(model)
        device_tag = gpu.tag if request.target == "tensorrt" and gpu else rtx_device_tag(targets)
        name = engine_file_name(
            architecture=d.architecture,
            scale=d.scale,
            model_sha256=model_sha256,
            onnx_sha256=onnx_sha256,
            precision=request.precision,
            profiles=profiles,
            batch=request.batch,
            builder=request.target,
            builder_version=version,
            device_tag=device_tag,
        )
        path = out_dir / name
        if path.is_file() and not request.force:
            existing = check_engine(path, model_sha256=model_sha256)
            # "unchecked": intact, built by this very version, but no GPU here to run it, which is
            # all an ahead-of-time build can ask
            if existing.manifest is not None and existing.status in ("valid", "unchecked"):
                log.info("%s is up to date (%s)", path, existing.reason)
                return BuiltEngine(path=path, manifest=existing.manifest, reused=True)
        timing_cache = out_dir / f"timing-{builder_tag(request.target, version)}-{device_tag}.cache"
        serialized = _build_serialized(
            trt,
            request,
            onnx_path,
            profiles,
            typing,
            timing_cache if request.target == "tensorrt" else None,
        )
    build_seconds = time.monotonic() - started
    partial = partial_file(path)
    try:
        partial.write_bytes(serialized)
        manifest = EngineManifest(
            engine_file=name,
            engine_sha256=sha256_file(partial),
            engine_bytes=len(serialized),
            model_source=request.model_source,
            model_name=d.name,
            model_sha256=model_sha256,
            architecture=d.architecture,
            scale=d.scale,
            in_channels=d.in_channels,
            out_channels=d.out_channels,
            size_multiple=d.size_multiple,
            precision=request.precision,
            profiles=profiles,
            profile_specs=tuple(request.profiles),
            batch=request.batch,
            builder=request.target,
            builder_version=version,
            network_typing=typing,
            gpu_name=gpu.name if request.target == "tensorrt" and gpu else None,
            compute_capability=gpu.compute_capability if request.target == "tensorrt" and gpu else None,
            target_compute_capabilities=targets,
            optimization_level=request.optimization_level,
            onnx_sha256=onnx_sha256,
            onnx_opset=DEFAULT_OPSET,
            vsr_version=__version__,
            built_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            build_seconds=round(build_seconds, 3),
            parity_psnr_db=None,
            parity_note="",
        )
        from vsr.engines.parity import measure_parity  # imports the backend, and with it torch.cuda work

        psnr, note = measure_parity(model, partial, manifest, gpu)
        manifest = replace(manifest, parity_psnr_db=psnr, parity_note=note)
        write_manifest(manifest, out_dir)
        publish(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BuiltEngine(path=path, manifest=manifest, reused=False)


def _parse(trt: ModuleType, network: Any, logger: Any, onnx_path: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i).desc() for i in range(parser.num_errors)]
        raise EngineError(
            f"{trt.__name__} {trt.__version__} cannot parse the ONNX export ({'; '.join(errors) or 'no reason given'}); "
            "report it with the model's architecture"
        )


def _load_timing_cache(config: Any, path: Path | None) -> Any:
    if path is None:
        return None
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        # made by another GPU or version despite its name (copied by hand): start afresh
        log.warning("timing cache %s does not match this GPU or TensorRT; starting a new one", path)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def _build_serialized(
    trt: ModuleType,
    request: EngineBuildRequest,
    onnx_path: Path,
    profiles: tuple[ShapeProfile, ...],
    typing: Typing,
    timing_cache_path: Path | None,
) -> bytes:
    logger = builder_logger(trt)
    logger.clear()
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if typing == "strong" else 0
    network = builder.create_network(flags)
    _parse(trt, network, logger, onnx_path)
    config = builder.create_builder_config()
    config.builder_optimization_level = request.optimization_level
    if request.precision == "fp16" and typing == "weak":
        config.set_flag(trt.BuilderFlag.FP16)
    if request.precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)
    if request.target == "tensorrt-rtx" and request.compute_capabilities:
        config.num_compute_capabilities = len(request.compute_capabilities)
        for index, cc in enumerate(request.compute_capabilities):
            if not config.set_compute_capability(rtx_compute_capability(trt, cc), index):
                raise EngineError(
                    f"TensorRT-RTX {trt.__version__} refused compute capability {cc} as a target"
                )
    input_name = network.get_input(0).name
    for p in profiles:
        profile = builder.create_optimization_profile()
        profile.set_shape(input_name, p.min, p.opt, p.max)
        if config.add_optimization_profile(profile) < 0:
            raise EngineError(f"{display_name(request.target)} refused the profile {p.describe()}")
    timing_cache = _load_timing_cache(config, timing_cache_path)
    log.info("building %s engine with %d profile(s)", display_name(request.target), len(profiles))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        reason = logger.last_error("no error was logged")
        raise EngineError(
            f"{display_name(request.target)} {trt.__version__} could not build the engine ({reason}); "
            "run again with --debug for its full log"
        )
    if timing_cache is not None and timing_cache_path is not None:
        write_atomically(bytes(timing_cache.serialize()), timing_cache_path)
    return bytes(serialized)
