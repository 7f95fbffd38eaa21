"""ONNX export of a loaded model: dynamic batch/height/width, fp32 or a true fp16 network.

The graph has one input ``input`` (N x C x H x W) and one output ``output`` (N x C x sH x sW).
The fp16 variant is an FP16 network (weights, activations, input and output in float16), which is
what TensorRT 11's strongly typed mode needs to build an FP16 engine now that the FP16 builder
flag is gone; TensorRT 10 builds either variant. What the pipeline needs to know about the model
(architecture, scale, size multiple, precision, where the weights came from) travels inside the
file as ``metadata_props`` (`OnnxExportInfo`), so an engine builder needs nothing but the file.

Exporter: the TorchScript-based one (``dynamo=False``). In torch 2.13 both exporters give the same
clean graph for our architectures (Conv, PRelu, DepthToSpace for PixelShuffle, a nearest Resize
with constant scales, so H and W stay symbolic), and both match PyTorch to ~1e-6. The dynamo
exporter needs onnxscript, which neither torch nor ``vsr[onnx]`` installs; it takes ~5 s instead of
0.4 s for the compact model, prints progress to stdout, and needs explicit ``Dim`` constraints
(``size_multiple * Dim``) for pixel-unshuffle models. The TorchScript exporter is deprecated
but present in every torch vsr allows (<= 2.14); its one weakness, silently baking a size-dependent
Python value into the graph, is caught here by turning its TracerWarnings into a `ModelError`.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

import torch

from vsr import __version__
from vsr.engines._files import write_atomically
from vsr.errors import ConfigError, EngineError, ModelError
from vsr.models.classic import CLASSIC_KERNELS
from vsr.models.descriptor import LoadedModel

if TYPE_CHECKING:
    import onnx

__all__ = [
    "DEFAULT_OPSET",
    "ExportPrecision",
    "OnnxExportInfo",
    "export_onnx",
    "model_fingerprint",
    "onnx_cache_name",
    "read_export_info",
]

ExportPrecision = Literal["fp32", "fp16"]

# 17: parsed by every TensorRT from 8.6 (10 and 11 included) and onnxruntime >= 1.13. The ops our
# models use gained nothing we need after it (Resize-18/19 only add antialias/keep_aspect_ratio).
DEFAULT_OPSET = 17
# DepthToSpace "CRD" mode (PixelShuffle's order) appeared in opset 11; the TorchScript exporter
# of torch 2.13 writes at most opset 20.
_MIN_OPSET, _MAX_OPSET = 11, 20
_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16}
# Height and width of the traced example for a dynamic export (rounded up to the size multiple).
# Small, because tracing runs the model once and fp16 convolutions on the CPU are slow (a 64x64
# compact-model trace took 8 s in fp16); the size does not enter a dynamic graph.
_TRACE_SIZE = 16
_PREFIX = "vsr."


@dataclass(frozen=True, kw_only=True)
class OnnxExportInfo:
    """What vsr writes into an exported file's ``metadata_props`` and reads back."""

    architecture: str
    name: str
    scale: int
    size_multiple: int
    in_channels: int
    out_channels: int
    precision: ExportPrecision
    opset: int
    dynamic: bool
    vsr_version: str
    fingerprint: str  # identity of the weights: the checkpoint's sha256, or a hash of the state dict
    checkpoint_sha256: str | None = None

    def to_metadata(self) -> dict[str, str]:
        props = {
            "architecture": self.architecture,
            "name": self.name,
            "scale": str(self.scale),
            "size_multiple": str(self.size_multiple),
            "in_channels": str(self.in_channels),
            "out_channels": str(self.out_channels),
            "precision": self.precision,
            "opset": str(self.opset),
            "dynamic": "true" if self.dynamic else "false",
            "version": self.vsr_version,
            "fingerprint": self.fingerprint,
        }
        if self.checkpoint_sha256 is not None:
            props["checkpoint_sha256"] = self.checkpoint_sha256
        return {_PREFIX + k: v for k, v in props.items()}

    @classmethod
    def from_metadata(cls, props: dict[str, str], *, source: str) -> OnnxExportInfo:
        own = {k.removeprefix(_PREFIX): v for k, v in props.items() if k.startswith(_PREFIX)}
        try:
            precision = own["precision"]
            if precision not in _DTYPES:
                raise ValueError(f"precision {precision!r}")
            return cls(
                architecture=own["architecture"],
                name=own["name"],
                scale=int(own["scale"]),
                size_multiple=int(own["size_multiple"]),
                in_channels=int(own["in_channels"]),
                out_channels=int(own["out_channels"]),
                precision=precision,  # type: ignore[arg-type]
                opset=int(own["opset"]),
                dynamic=own["dynamic"] == "true",
                vsr_version=own["version"],
                fingerprint=own["fingerprint"],
                checkpoint_sha256=own.get("checkpoint_sha256"),
            )
        except (KeyError, ValueError) as exc:
            raise EngineError(
                f"{source} has no complete vsr export metadata (bad or missing {exc}); "
                "it was not exported by vsr, re-export it with export_onnx"
            ) from None


def model_fingerprint(model: LoadedModel) -> str:
    """A sha256 that changes when the weights do: the checkpoint's when known, else the state dict's.

    The state-dict hash covers names, dtypes, shapes and bytes, plus the architecture and scale,
    so two classic resizers (no weights at all) of different scales still differ.
    """
    if model.descriptor.sha256:
        return model.descriptor.sha256
    digest = hashlib.sha256()
    d = model.descriptor
    digest.update(f"{d.architecture}|{d.scale}|{type(model.module).__qualname__}".encode())
    for key, tensor in sorted(model.module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"|{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        # a uint8 view hashes the raw bytes of any dtype (numpy has no bfloat16)
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def onnx_cache_name(model: LoadedModel, *, precision: ExportPrecision, opset: int = DEFAULT_OPSET) -> str:
    """The file name of a dynamic export, carrying everything that changes what the graph computes."""
    d = model.descriptor
    return f"{d.architecture}-x{d.scale}-{model_fingerprint(model)[:16]}-{precision}-opset{opset}.onnx"


def _import_onnx() -> ModuleType:
    try:
        import onnx
    except ImportError as exc:
        raise EngineError(
            "ONNX export needs the onnx package, which is not installed: pip install 'vsr[onnx]'"
        ) from exc
    return onnx


def _check_request(model: LoadedModel, precision: str, opset: int, dynamic: bool) -> None:
    d = model.descriptor
    if d.task != "sr":
        # The graph here has one input; a denoiser's noise level would be a second one.
        raise ModelError(f"model {d.name} is a denoiser; ONNX export supports super-resolution models only")
    if precision not in _DTYPES:
        raise ConfigError(f"ONNX export supports precision fp32 or fp16, got {precision!r}")
    if precision not in d.precisions:
        raise ModelError(f"model {d.name} does not support {precision}; export it as fp32")
    if not _MIN_OPSET <= opset <= _MAX_OPSET:
        raise ConfigError(
            f"ONNX opset {opset} is not supported; use {_MIN_OPSET} to {_MAX_OPSET} (default {DEFAULT_OPSET})"
        )
    if dynamic and d.architecture in CLASSIC_KERNELS:
        # Its resize matrices are built in Python for one input size, so a traced graph would
        # resize every other size with the wrong matrices.
        raise ModelError(
            f"the classic {d.architecture} resizer cannot be exported with dynamic sizes (its resize "
            "matrices depend on the input size); export it with dynamic=False for one fixed size"
        )


def _is_exporter_notice(w: warnings.WarningMessage) -> bool:
    # the legacy-exporter deprecation notices: the choice is documented above, not news for the user
    in_torch_onnx = "torch/onnx" in w.filename.replace(os.sep, "/")
    return issubclass(w.category, DeprecationWarning) and (in_torch_onnx or "TorchScript" in str(w.message))


def _trace(module: torch.nn.Module, example: torch.Tensor, opset: int, dynamic: bool, name: str) -> bytes:
    axes = {
        "input": {0: "batch", 2: "height", 3: "width"},
        "output": {0: "batch", 2: "out_height", 3: "out_width"},
    }
    buffer = io.BytesIO()
    # Recorded rather than raised: the tracer warns from inside C++ (Tensor.__bool__), where an
    # exception turns into a SystemError.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.onnx.export(
            module,
            (example,),
            buffer,
            input_names=["input"],
            output_names=["output"],
            opset_version=opset,
            dynamo=False,
            dynamic_axes=axes if dynamic else None,
            do_constant_folding=True,
        )
    for w in caught:
        if issubclass(w.category, torch.jit.TracerWarning):
            # A tensor became a Python number during tracing (a size, a branch): the graph is
            # right for the traced size only, which is fine for a static export.
            if dynamic:
                reason = str(w.message).split(".")[0]
                raise ModelError(
                    f"model {name} cannot be exported with dynamic sizes: its forward turns tensor values "
                    f"into Python values ({reason}); export it with dynamic=False for one fixed size"
                )
        elif not _is_exporter_notice(w):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return buffer.getvalue()


def export_onnx(
    model: LoadedModel,
    path: str | os.PathLike[str],
    *,
    precision: ExportPrecision = "fp32",
    opset: int = DEFAULT_OPSET,
    dynamic: bool = True,
    input_size: tuple[int, int] | None = None,
) -> Path:
    """Write ``model`` as an ONNX file at ``path`` and return the path.

    ``dynamic``: batch, height and width are symbolic (H and W must still be multiples of the
    descriptor's ``size_multiple`` at run time). Otherwise the graph is fixed to batch 1 and
    ``input_size`` (height, width), which a static export requires. The file
    is checked with ``onnx.checker`` and appears complete or not at all (temp file, then rename).
    """
    _check_request(model, precision, opset, dynamic)
    onnx_mod = _import_onnx()
    d = model.descriptor
    m = d.size_multiple
    if dynamic:
        h = w = -(-_TRACE_SIZE // m) * m  # the trace must be a size the model accepts
    elif input_size is None:
        raise ConfigError("a static ONNX export (dynamic=False) needs input_size=(height, width)")
    elif input_size[0] % m or input_size[1] % m or min(input_size) < 1:
        raise ConfigError(
            f"input_size {input_size} is not a positive multiple of {m}, which model {d.name} needs"
        )
    else:
        h, w = input_size
    dtype = _DTYPES[precision]
    # a private copy: the caller's module stays float32 (it may be shared with a torch backend)
    module = copy.deepcopy(model.module).eval().requires_grad_(False).to(device="cpu", dtype=dtype)
    example = torch.rand(1, d.in_channels, h, w, generator=torch.Generator().manual_seed(0)).to(dtype)
    proto: onnx.ModelProto = onnx_mod.load_from_string(_trace(module, example, opset, dynamic, d.name))
    info = OnnxExportInfo(
        architecture=d.architecture,
        name=d.name,
        scale=d.scale,
        size_multiple=d.size_multiple,
        in_channels=d.in_channels,
        out_channels=d.out_channels,
        precision=precision,
        opset=opset,
        dynamic=dynamic,
        vsr_version=__version__,
        fingerprint=model_fingerprint(model),
        checkpoint_sha256=d.sha256,
    )
    onnx_mod.helper.set_model_props(proto, info.to_metadata())
    try:
        onnx_mod.checker.check_model(proto, full_check=True)
    except onnx_mod.checker.ValidationError as exc:
        raise EngineError(f"the ONNX export of {d.name} is invalid ({exc}); please report this") from exc
    return write_atomically(proto.SerializeToString(), Path(path))


def read_export_info(path: str | os.PathLike[str]) -> OnnxExportInfo:
    """The `OnnxExportInfo` stored in a file by `export_onnx` (weights are not loaded)."""
    onnx_mod = _import_onnx()
    from google.protobuf.message import DecodeError  # onnx's own dependency

    p = Path(path)
    try:
        proto = onnx_mod.load(p, load_external_data=False)
    except (OSError, DecodeError) as exc:
        raise EngineError(f"{p} is not a readable ONNX file ({exc}); re-export it") from exc
    props = {prop.key: prop.value for prop in proto.metadata_props}
    return OnnxExportInfo.from_metadata(props, source=str(p))
