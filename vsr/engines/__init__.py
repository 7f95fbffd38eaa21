"""Engines built from loaded models: ONNX export, TensorRT / TensorRT-RTX builds, and the engine cache.

Importing this package loads neither onnx, onnxruntime nor TensorRT; they are imported when a
file is exported, built or read.
"""

from vsr.engines.manifest import (
    EngineManifest,
    EnginePrecision,
    engine_file_name,
    read_manifest,
    rebuild_command,
)
from vsr.engines.onnx_export import (
    DEFAULT_OPSET,
    ExportPrecision,
    OnnxExportInfo,
    export_onnx,
    model_fingerprint,
    onnx_cache_name,
    read_export_info,
)
from vsr.engines.profiles import NAMED_SIZES, ShapeProfile, choose_profile, parse_profiles
from vsr.engines.targets import BUILDERS, Builder, Environment, GpuInfo, detect_environment
from vsr.engines.trt_build import BuiltEngine, EngineBuildRequest, build_engine
from vsr.engines.validate import EngineCheck, EngineStatus, check_engine, find_engine, list_engines

__all__ = [
    "BUILDERS",
    "DEFAULT_OPSET",
    "NAMED_SIZES",
    "Builder",
    "BuiltEngine",
    "EngineBuildRequest",
    "EngineCheck",
    "EngineManifest",
    "EnginePrecision",
    "EngineStatus",
    "Environment",
    "ExportPrecision",
    "GpuInfo",
    "OnnxExportInfo",
    "ShapeProfile",
    "build_engine",
    "check_engine",
    "choose_profile",
    "detect_environment",
    "engine_file_name",
    "export_onnx",
    "find_engine",
    "list_engines",
    "model_fingerprint",
    "onnx_cache_name",
    "parse_profiles",
    "read_export_info",
    "read_manifest",
    "rebuild_command",
]
