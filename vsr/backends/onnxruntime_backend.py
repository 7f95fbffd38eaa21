"""onnxruntime backend: the model exported to ONNX once, cached under ``engines/``, run by onnxruntime.

onnxruntime is imported when the backend is created, never when vsr is imported. The exported
file is named by what changes it (`vsr.engines.onnx_cache_name`: weights fingerprint, precision,
opset) and reused while its embedded metadata still names the same weights and precision.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from vsr.backends.base import Backend, BackendOptions
from vsr.errors import DeviceError, EngineError
from vsr.models.descriptor import LoadedModel, Precision

__all__ = ["ENGINE_DIR", "OnnxRuntimeBackend", "create_onnxruntime_backend"]

log = logging.getLogger(__name__)

ENGINE_DIR = Path("engines")  # relative to the working directory, as the CLI's --out default
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
_INSTALL_HINT = "pip install 'vsr[onnx]'"


def _import_onnxruntime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError as exc:
        raise DeviceError(
            f"the onnxruntime backend needs the onnxruntime package, which is not installed ({exc}); "
            f"{_INSTALL_HINT}, or use --backend torch"
        ) from exc
    return onnxruntime


class OnnxRuntimeBackend:
    """Runs an exported ONNX graph with onnxruntime on the CPU, or on CUDA through IO binding.

    ``fp16`` runs the FP16 network (float16 weights and I/O; inputs are cast on the way in and
    the output comes back float32); ``bf16`` is refused, onnxruntime has no bf16 convolutions.
    The object keeps nothing per call, so one session can serve several threads.
    """

    name = "onnxruntime"

    def __init__(
        self,
        model: LoadedModel,
        options: BackendOptions,
        *,
        engine_dir: str | Path = ENGINE_DIR,
        opset: int | None = None,
    ) -> None:
        from vsr.engines import onnx_export

        d = model.descriptor
        if d.architecture in onnx_export.CLASSIC_KERNELS:
            # its resize matrices are made in Python for one input size: no graph fits every size
            raise DeviceError(
                f"the onnxruntime backend runs network models; {d.architecture} runs with --backend torch"
            )
        if options.precision not in _DTYPES:
            raise DeviceError(
                f"the onnxruntime backend runs fp32 or fp16, not {options.precision}; "
                "use --precision fp32 or fp16, or --backend torch for bf16"
            )
        if options.precision not in d.precisions:
            raise DeviceError(f"model {d.name} does not support {options.precision}; use --precision fp32")
        ort = _import_onnxruntime()
        self.device = options.device
        self.precision: Precision = options.precision
        self._dtype = _DTYPES[options.precision]
        self._scale = d.scale
        self._out_channels = d.out_channels
        self._providers = self._choose_providers(ort, options.device)
        opset = opset if opset is not None else onnx_export.DEFAULT_OPSET
        name = onnx_export.onnx_cache_name(model, precision=options.precision, opset=opset)
        self.onnx_path = Path(engine_dir) / name
        fingerprint = onnx_export.model_fingerprint(model)
        session = self._open_cached(ort, fingerprint) if self.onnx_path.is_file() else None
        if session is None:
            log.info("exporting %s to %s", d.name, self.onnx_path)
            onnx_export.export_onnx(model, self.onnx_path, precision=options.precision, opset=opset)
            session = ort.InferenceSession(str(self.onnx_path), providers=self._providers)
        self._session: Any = session

    @staticmethod
    def _choose_providers(ort: ModuleType, device: torch.device) -> list[Any]:
        if device.type == "cpu":
            return ["CPUExecutionProvider"]
        if device.type != "cuda":
            raise DeviceError(f"the onnxruntime backend runs on cpu or cuda, not {device}")
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but torch sees no CUDA GPU; use --device cpu")
        available = ort.get_available_providers()
        if "CUDAExecutionProvider" not in available:
            # No silent fallback to the CPU: the caller's tensors live on the GPU and expect speed.
            raise DeviceError(
                f"this onnxruntime has no CUDA support (providers: {', '.join(available)}); "
                "pip install onnxruntime-gpu, or use --device cpu"
            )
        index = device.index if device.index is not None else torch.cuda.current_device()
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]

    def _open_cached(self, ort: ModuleType, fingerprint: str) -> Any | None:
        """A session on the cached file, or None when it must be exported again."""
        from vsr.engines.onnx_export import OnnxExportInfo

        path = self.onnx_path
        state = ort.capi.onnxruntime_pybind11_state  # where onnxruntime defines its exceptions
        try:
            session = ort.InferenceSession(str(path), providers=self._providers)
        except (state.Fail, state.InvalidProtobuf, state.InvalidGraph) as exc:
            log.warning("cached ONNX file %s cannot be loaded (%s); exporting it again", path, exc)
            return None
        props = dict(session.get_modelmeta().custom_metadata_map)
        try:
            info = OnnxExportInfo.from_metadata(props, source=str(path))
        except EngineError as exc:
            log.warning("%s; exporting it again", exc)
            return None
        if info.fingerprint != fingerprint or info.precision != self.precision or not info.dynamic:
            # The name says it is ours, the content says otherwise: a hand-copied or foreign file.
            log.warning("cached ONNX file %s holds other weights or settings; exporting it again", path)
            return None
        return session

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(device=self.device, dtype=self._dtype).contiguous()
        if self.device.type == "cpu":
            # numpy views share the tensors' memory: no copies beyond the dtype cast
            (y,) = self._session.run(["output"], {"input": x.numpy()})
            return torch.from_numpy(y).to(torch.float32)
        return self._run_cuda(x).to(torch.float32)

    def _run_cuda(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        out = torch.empty(
            (n, self._out_channels, h * self._scale, w * self._scale), device=self.device, dtype=self._dtype
        )
        np_dtype = np.float16 if self._dtype == torch.float16 else np.float32
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        binding = self._session.io_binding()
        binding.bind_input("input", "cuda", index, np_dtype, tuple(x.shape), x.data_ptr())
        binding.bind_output("output", "cuda", index, np_dtype, tuple(out.shape), out.data_ptr())
        # onnxruntime runs on its own stream: the input must be complete before it reads it;
        # Run synchronises that stream before returning (disable_synchronize_execution_providers
        # is left unset), so `out` is complete when it is handed back.
        torch.cuda.current_stream(self.device).synchronize()
        self._session.run_with_iobinding(binding)
        return out


def create_onnxruntime_backend(model: LoadedModel, options: BackendOptions) -> Backend:
    return OnnxRuntimeBackend(model, options)
