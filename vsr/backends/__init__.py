"""Backends run a model on a device; chosen by name through a registry."""

from vsr.backends.base import Backend, BackendOptions, available_backends, create_backend, register_backend
from vsr.backends.device import cpu_has_fast_bf16, resolve_device, resolve_precision
from vsr.backends.onnxruntime_backend import create_onnxruntime_backend
from vsr.backends.tensorrt_backend import create_tensorrt_backend, create_tensorrt_rtx_backend
from vsr.backends.torch_backend import TorchBackend, create_torch_backend

register_backend("torch", create_torch_backend)
register_backend("onnxruntime", create_onnxruntime_backend)
register_backend("tensorrt", create_tensorrt_backend)
register_backend("tensorrt-rtx", create_tensorrt_rtx_backend)

__all__ = [
    "Backend",
    "BackendOptions",
    "TorchBackend",
    "available_backends",
    "cpu_has_fast_bf16",
    "create_backend",
    "register_backend",
    "resolve_device",
    "resolve_precision",
]
