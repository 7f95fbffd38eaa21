"""torch.compile (inductor) for inference: one specialised build per input shape, bounded.

Inductor with ``freezing`` takes the weights as constants, lets oneDNN prepack them, and fuses
each convolution's pointwise neighbours (PReLU/ReLU, the residual add, pixel shuffle's copy) into
generated kernels. `CastIO` puts the casts to and from the run precision and layout inside the
build too, so the last kernels write the float32 output directly: the upsampled residual is then
added in float32 instead of being rounded to bf16 first, which brings the output slightly closer
to the fp32 model's (mean error 1.40e-3 against 1.60e-3 for fast-x2) and makes it differ from the
eager bf16 run by at most one bf16 step (one uint8 level in 15 % of the samples). On the project's
2-core CPU in bf16 this is the fast path: per 640x360 frame, fast-x2 34 ms and fast-x4 54 ms
where eager runs took 55-138 and 81-101 (`tools/bench_compile.py`, docs/BENCHMARKS.md; eager
times on that machine vary from run to run far more than compiled ones).

A build takes seconds (1-4 s per shape on that CPU with the on-disk cache a previous build left,
21.5 s for the first build on a fresh machine, which compiles inductor's headers). So a bounded number of shapes is
built: a video gives one, tiling a few. A smaller batch of a frame size already built (a stream's
last batch, or a batch from which still-frame reuse took frames) is padded up to it rather than
built anew; any other shape beyond the bound runs eagerly. A build that fails (no C++ compiler,
an operator inductor cannot lower) is logged once and the module runs eagerly from then on.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from typing import Any

import torch

from vsr.models.classic import CLASSIC_KERNELS

__all__ = ["AUTO_MIN_FRAMES", "MAX_SHAPES", "CastIO", "CompiledShapes", "auto_compile", "cxx_compiler"]

log = logging.getLogger(__name__)

# a video gives one shape, tiling up to four (inner, right, bottom and corner tiles)
MAX_SHAPES = 4

_Key = tuple[tuple[int, ...], torch.dtype, bool]

# the automatic choice: a build costs 1-4 s per shape (21.5 s on a fresh machine) and saves
# 14-60 ms a 640x360 frame with the fast models; a clip this short would not earn it back
AUTO_MIN_FRAMES = 300


def auto_compile(device: torch.device, architecture: str, frame_count: int | None) -> tuple[bool, str]:
    """Whether a torch-backend run should build, unasked, and a note for the user when it does
    (or cannot): CPU runs of neural models on a file of `AUTO_MIN_FRAMES` frames or more.

    Live inputs (no frame count) run eagerly unless asked: a build holds the first frame for
    seconds, and live mode drops what arrives meanwhile (90-139 frames of a 25 fps feed in
    `tools/bench_live.py`), while eagerly, with the PReLUs as rows (`vsr.backends.cpu_prelu`),
    fast-x2 keeps up with that feed from its first frame (docs/BENCHMARKS.md)."""
    if device.type != "cpu" or architecture in CLASSIC_KERNELS:  # a resizer: nothing to fuse
        return False, ""
    if frame_count is None or frame_count < AUTO_MIN_FRAMES:
        return False, ""
    if cxx_compiler() is None:
        return False, "torch.compile is off: no C++ compiler (g++) found; install one for faster CPU runs"
    return (
        True,
        "torch.compile is on (--no-compile to skip): the first frame waits while each input shape is built",
    )


def cxx_compiler() -> str | None:
    """The C++ compiler inductor's CPU code needs (it looks for g++ first), or None."""
    for name in ("g++", "c++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CastIO(torch.nn.Module):
    """``module`` with its input (and tensor arguments) cast to ``dtype`` and ``memory_format``
    and its output returned as contiguous float32: what a backend does around the module, made
    part of the module so that a build fuses it."""

    def __init__(
        self, module: torch.nn.Module, dtype: torch.dtype, memory_format: torch.memory_format
    ) -> None:
        super().__init__()
        self.module = module
        self.dtype = dtype
        self.memory_format = memory_format

    def forward(self, x: torch.Tensor, *extra: Any) -> torch.Tensor:
        x = x.to(dtype=self.dtype, memory_format=self.memory_format)
        extra = tuple(e.to(self.dtype) if isinstance(e, torch.Tensor) else e for e in extra)
        y = self.module(x, *extra)
        return y.to(dtype=torch.float32, memory_format=torch.contiguous_format)


def _key(x: torch.Tensor) -> _Key:
    return tuple(x.shape), x.dtype, x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)


class CompiledShapes:
    """Calls ``module(x, *extra)`` through a frozen inductor build of its shape, or eagerly.

    ``x`` is the batch; each tensor in ``extra`` whose first dimension is the batch's (a
    per-frame noise level) is padded with it. Call it under `torch.inference_mode` every time:
    a build made in one grad mode is not reused in another.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        name: str,
        max_shapes: int = MAX_SHAPES,
        memory_format: torch.memory_format | None = None,
    ) -> None:
        self._module = module
        # inputs are put in this layout first: builds are specialised on strides, and the same
        # frames reach a model both ways (decoded RGB is channels_last, a denoiser's output is not)
        self._memory_format = memory_format
        self._name = name
        self._max = max_shapes
        self._compiled = torch.compile(module, dynamic=False, options={"freezing": True})
        self._built: set[_Key] = set()
        self._failed = False
        self._lock = threading.Lock()
        self.build_seconds = 0.0  # time spent building, all shapes together
        self.padded_calls = 0  # calls that ran a larger built batch

    @property
    def built(self) -> int:
        return len(self._built)

    @property
    def failed(self) -> bool:
        return self._failed

    def __call__(self, x: torch.Tensor, *extra: Any) -> torch.Tensor:
        if self._memory_format is not None and x.dim() == 4:
            x = x.contiguous(memory_format=self._memory_format)
        with self._lock:
            key = _key(x)
            if self._failed:
                return self._module(x, *extra)
            if key in self._built:
                return self._compiled(x, *extra)
            bigger = self._built_batch_for(key)
            if bigger is not None:
                self.padded_calls += 1
                return self._padded(x, extra, bigger)
            if len(self._built) >= self._max:
                return self._module(x, *extra)
            return self._build(x, extra, key)

    def _built_batch_for(self, key: _Key) -> int | None:
        shape, dtype, channels_last = key
        sizes = [
            s[0]
            for s, d, cl in self._built
            if s[1:] == shape[1:] and d == dtype and cl == channels_last and s[0] > shape[0]
        ]
        return min(sizes) if sizes else None

    def _padded(self, x: torch.Tensor, extra: tuple[Any, ...], batch: int) -> torch.Tensor:
        n = x.shape[0]
        fmt = torch.channels_last if _key(x)[2] else torch.contiguous_format
        full = x.new_zeros((batch, *x.shape[1:])).contiguous(memory_format=fmt)
        full[:n].copy_(x)
        padded_extra = []
        for e in extra:
            if isinstance(e, torch.Tensor) and e.dim() >= 1 and e.shape[0] == n:
                grown = e.new_zeros((batch, *e.shape[1:]))
                grown[:n].copy_(e)
                e = grown
            padded_extra.append(e)
        return self._compiled(full, *padded_extra)[:n]

    def _build(self, x: torch.Tensor, extra: tuple[Any, ...], key: _Key) -> torch.Tensor:
        started = time.perf_counter()
        try:
            y = self._compiled(x, *extra)
        except Exception as exc:  # inductor's errors have no common base: any failure means eager
            self._failed = True
            log.warning(
                "torch.compile of %s failed (%s: %s); running it eagerly",
                self._name,
                type(exc).__name__,
                str(exc).strip().splitlines()[0] if str(exc).strip() else "",
            )
            return self._module(x, *extra)
        seconds = time.perf_counter() - started
        self.build_seconds += seconds
        self._built.add(key)
        log.info("torch.compile built %s for input %s in %.1f s", self._name, tuple(x.shape), seconds)
        return y
