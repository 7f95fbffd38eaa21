"""PyTorch backend: eager (or compiled) inference on the CPU or a CUDA GPU.

On CUDA the module runs in fp16 (the plan's default there) with channels_last weights and
inputs, the layout cuDNN's tensor-core convolutions prefer. With ``cuda_graph`` each input shape
is captured once into a CUDA graph (`torch.cuda.CUDAGraph`) and replayed: one launch per call
instead of one per layer, which is what bounds small models at small frame sizes. A shape whose
capture fails runs eagerly from then on. With ``compile`` the module runs through a frozen
inductor build per input shape (`vsr.backends.compiled`), the fast path on the CPU. On the CPU in
bf16, eager or compiled, PReLUs of channel counts that PyTorch's kernel runs scalar (not a
multiple of 32) are computed in a vectorised form (`vsr.backends.cpu_prelu`).
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass

import torch

from vsr.backends.base import Backend, BackendOptions
from vsr.backends.compiled import CastIO, CompiledShapes
from vsr.backends.cpu_prelu import use_row_prelus
from vsr.errors import ConfigError, DeviceError, ModelError
from vsr.models.descriptor import LoadedModel

__all__ = ["CudaGraphs", "TorchBackend"]

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Capture warm-up: the documented side-stream warm-up lets cuDNN pick its algorithms and the
# caching allocator settle before capture (a capture must not see first-call work).
_WARMUP_RUNS = 3
# A video gives one shape, tiling a handful; each graph keeps its own output memory, so the
# number kept is bounded and further shapes run eagerly.
MAX_GRAPHS = 8


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    input: torch.Tensor  # the static tensors the graph reads and writes: copied into, read out of
    output: torch.Tensor


class CudaGraphs:
    """Runs ``module`` by replaying one CUDA graph per (shape, dtype, layout) of its input.

    Replays return float32, contiguous (what `TorchBackend.run` returns); the eager fallback
    returns what the module does.

    Follows PyTorch's documented whole-network capture: warm up on a side stream, capture under
    `torch.cuda.graph`, then for each call copy the input into the static input tensor, replay,
    and copy the static output out (the next replay overwrites it). Capture and replay hold a
    lock: the static tensors are shared by every caller.
    """

    def __init__(
        self, module: torch.nn.Module, device: torch.device, *, max_graphs: int = MAX_GRAPHS
    ) -> None:
        self._module = module
        self._device = device
        self._max = max_graphs
        self._graphs: dict[tuple[object, ...], _Captured] = {}
        self._eager: set[tuple[object, ...]] = set()  # shapes whose capture failed, or over the bound
        self._lock = threading.Lock()

    @property
    def captured(self) -> int:
        return len(self._graphs)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.stride())
        with self._lock:
            entry = self._graphs.get(key)
            if entry is None and key not in self._eager:
                entry = self._capture(x, key)
            if entry is None:
                return self._module(x)
            entry.input.copy_(x)
            entry.graph.replay()
            # a copy, made before the lock is released: the next replay overwrites the output;
            # made as float32 at once, the backend's output type, so that it is the only copy
            return entry.output.to(dtype=torch.float32, memory_format=torch.contiguous_format, copy=True)

    def _capture(self, x: torch.Tensor, key: tuple[object, ...]) -> _Captured | None:
        if len(self._graphs) >= self._max:
            log.info("%d CUDA graphs captured already; input %s runs eagerly", self._max, tuple(x.shape))
            self._eager.add(key)
            return None
        static_input = x.clone()  # same shape, dtype and strides (channels_last stays channels_last)
        current = torch.cuda.current_stream(self._device)
        side = torch.cuda.Stream(self._device)
        side.wait_stream(current)
        try:
            with torch.cuda.stream(side):
                for _ in range(_WARMUP_RUNS):
                    self._module(static_input)
            current.wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # captured on the warm-up stream: cuDNN/cuBLAS handles are per stream, and one made
            # during capture is capture-unsafe. "thread_local": a CUDA call another thread of the
            # caller's makes meanwhile (it is not part of this graph) does not abort the capture.
            with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
                static_output = self._module(static_input)
        except RuntimeError as exc:  # what CUDA and the capture checks raise for an uncapturable op
            # the failed capture may have left work queued: let it finish before running eagerly
            torch.cuda.synchronize(self._device)
            log.warning("CUDA graph capture of input %s failed (%s); running it eagerly", tuple(x.shape), exc)
            self._eager.add(key)
            return None
        entry = _Captured(graph=graph, input=static_input, output=static_output)
        self._graphs[key] = entry
        return entry


class TorchBackend:
    """Runs the model's own module with its weights cast once to the run precision.

    Casting the weights (rather than autocast) avoids re-casting them on every call; inputs are
    cast on the way in and the output comes back as float32.
    """

    name = "torch"

    def __init__(self, model: LoadedModel, options: BackendOptions) -> None:
        if model.descriptor.task != "sr":
            # run(batch) calls module(batch); a denoiser also needs its noise level
            raise ModelError(
                f"model {model.descriptor.name} is a denoiser, not a super-resolution model; use an SR model here"
            )
        if options.precision not in model.descriptor.precisions:
            raise DeviceError(
                f"model {model.descriptor.name} does not support {options.precision}; "
                f"use --precision {'/'.join(sorted(model.descriptor.precisions))}"
            )
        if options.device.type == "cuda" and not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but torch sees no CUDA GPU; use --device cpu")
        if options.cuda_graph and options.compile:
            # torch.compile's own CUDA graphs (mode="reduce-overhead") and a manual capture of a
            # compiled module do not mix
            raise ConfigError("choose either torch.compile or CUDA graph capture, not both")
        if options.cuda_graph and options.device.type != "cuda":
            raise ConfigError(
                f"CUDA graphs need a CUDA device, not {options.device}; drop the CUDA graph option"
            )
        self.device = options.device
        self.precision = options.precision
        self._dtype = DTYPES[options.precision]
        self._memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        # a private copy: the caller's module stays in fp32 on its device (it may be shared)
        module = copy.deepcopy(model.module).eval().requires_grad_(False)
        module = module.to(device=self.device, dtype=self._dtype, memory_format=self._memory_format)
        cpu_bf16 = self.device.type == "cpu" and self._dtype == torch.bfloat16 and options.channels_last
        if cpu_bf16:
            swapped = use_row_prelus(module)  # the same outputs, bit for bit, many times faster
            if swapped:
                log.debug("%d PReLU layers of %s use the vectorised form", swapped, model.descriptor.name)
        self.compiled = (
            CompiledShapes(
                CastIO(module, self._dtype, self._memory_format),
                name=model.descriptor.name,
                memory_format=self._memory_format,
            )
            if options.compile
            else None
        )
        self._module: torch.nn.Module = module
        self.graphs = CudaGraphs(module, self.device) if options.cuda_graph else None

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:  # casts included in the build
            with torch.inference_mode():
                return self.compiled(batch)
        x = batch.to(dtype=self._dtype, memory_format=self._memory_format)
        with torch.inference_mode():
            y = self.graphs(x) if self.graphs is not None else self._module(x)
        return y.to(dtype=torch.float32, memory_format=torch.contiguous_format)


def create_torch_backend(model: LoadedModel, options: BackendOptions) -> Backend:
    return TorchBackend(model, options)
