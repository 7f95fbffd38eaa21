"""Engines built from loaded models: ONNX export (TensorRT builds will live here too).

Importing this package loads neither onnx nor onnxruntime; they are imported when a file is
exported or read.
"""

from vsr.engines.onnx_export import (
    DEFAULT_OPSET,
    ExportPrecision,
    OnnxExportInfo,
    export_onnx,
    model_fingerprint,
    onnx_cache_name,
    read_export_info,
)

__all__ = [
    "DEFAULT_OPSET",
    "ExportPrecision",
    "OnnxExportInfo",
    "export_onnx",
    "model_fingerprint",
    "onnx_cache_name",
    "read_export_info",
]
