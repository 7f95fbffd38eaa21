"""What an engine is built with and for: the TensorRT flavour and version, the GPU, compute capabilities.

Two builders share one API: ``tensorrt`` (TensorRT 10 or 11; builds on, and for, the CUDA GPU it
runs on) and ``tensorrt-rtx`` (TensorRT for RTX; builds ahead of time on any machine, GPU or not,
for a list of compute capabilities). Their modules are imported here, when a build or a backend
needs them, never when vsr is imported.
"""

from __future__ import annotations

import collections
import functools
import importlib
import logging
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import torch

from vsr.errors import ConfigError, EngineError, VsrError

__all__ = [
    "BUILDERS",
    "RTX_DEFAULT_TARGETS",
    "Builder",
    "Environment",
    "GpuInfo",
    "builder_logger",
    "builder_tag",
    "current_gpu",
    "detect_environment",
    "display_name",
    "import_builder",
    "major_version",
    "parse_compute_capabilities",
    "rtx_compute_capability",
    "rtx_known_targets",
]

Builder = Literal["tensorrt", "tensorrt-rtx"]
BUILDERS: tuple[Builder, ...] = ("tensorrt", "tensorrt-rtx")
_MODULES: dict[str, str] = {"tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx"}
_HINTS: dict[str, str] = {
    "tensorrt": "pip install 'vsr[tensorrt]'",
    "tensorrt-rtx": "pip install tensorrt-rtx",
}
_DISPLAY = {"tensorrt": "TensorRT", "tensorrt-rtx": "TensorRT-RTX"}
# What TensorRT-RTX targets when no compute capability is set (its CPU-only AOT documentation:
# Ampere and later, 8.0, 8.6, 8.9 and 12.0); 7.5 (Turing) must be asked for explicitly.
RTX_DEFAULT_TARGETS: tuple[str, ...] = ("8.0", "8.6", "8.9", "12.0")
_CC = re.compile(r"^(\d{1,2})\.(\d)$")
log = logging.getLogger(__name__)


def display_name(builder: str) -> str:
    return _DISPLAY.get(builder, builder)


def import_builder(builder: Builder, *, error: type[VsrError] = EngineError) -> ModuleType:
    """The ``tensorrt`` or ``tensorrt_rtx`` module, or ``error`` saying how to install it."""
    if builder not in _MODULES:
        raise ConfigError(f"unknown engine target {builder!r}; use {' or '.join(BUILDERS)}")
    try:
        module = importlib.import_module(_MODULES[builder])
    except ImportError as exc:
        raise error(
            f"{builder} engines need the {_MODULES[builder]} module, which is not installed or does "
            f"not load ({exc}); {_HINTS[builder]}"
        ) from exc
    return module


def major_version(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise EngineError(f"cannot read the TensorRT version {version!r}; reinstall TensorRT") from None


def builder_tag(builder: str, version: str) -> str:
    """``trt10.13.0.35`` or ``trtrtx1.7.1.116``: the builder and exact version, for file names."""
    return ("trtrtx" if builder == "tensorrt-rtx" else "trt") + version


def parse_compute_capabilities(text: str) -> tuple[str, ...]:
    """``"8.6, 8.9,12.0"`` -> ``("8.6", "8.9", "12.0")``: sorted, duplicates dropped."""
    found: set[tuple[int, int]] = set()
    for item in filter(None, (s.strip() for s in text.split(","))):
        m = _CC.match(item)
        if m is None:
            raise ConfigError(f"bad compute capability {item!r}: write MAJOR.MINOR, e.g. 8.6,8.9,12.0")
        found.add((int(m.group(1)), int(m.group(2))))
    if not found:
        raise ConfigError("--compute-capability names none; give e.g. 8.6,8.9,12.0")
    return tuple(f"{a}.{b}" for a, b in sorted(found))


def rtx_known_targets(module: ModuleType) -> tuple[str, ...]:
    """The compute capabilities this TensorRT-RTX can build for (its ``ComputeCapability.SMxy``)."""
    names = [n for n in module.ComputeCapability.__members__ if re.fullmatch(r"SM\d{2,3}", n)]
    return tuple(f"{n[2:-1]}.{n[-1]}" for n in names)


def rtx_compute_capability(module: ModuleType, cc: str) -> Any:
    """The ``ComputeCapability`` member for ``"8.6"`` (``SM86``), or a ConfigError listing the known ones."""
    member = getattr(module.ComputeCapability, "SM" + cc.replace(".", ""), None)
    if member is None:
        raise ConfigError(
            f"TensorRT-RTX {module.__version__} cannot build for compute capability {cc}; "
            f"it knows {', '.join(rtx_known_targets(module))}"
        )
    return member


@dataclass(frozen=True, kw_only=True)
class GpuInfo:
    name: str  # as CUDA reports it, e.g. "NVIDIA H200"
    compute_capability: str  # "9.0"

    @property
    def tag(self) -> str:
        """``nvidia-h200-sm90``: the GPU in a file name."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")
        return f"{slug}-sm{self.compute_capability.replace('.', '')}"


def current_gpu(device: torch.device | None = None) -> GpuInfo | None:
    """The CUDA GPU torch would use (``device`` or the current one), or None when there is none."""
    if not torch.cuda.is_available():
        return None
    index = device.index if device is not None and device.index is not None else torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return GpuInfo(name=torch.cuda.get_device_name(index), compute_capability=f"{major}.{minor}")


@dataclass(frozen=True, kw_only=True)
class Environment:
    """What a cached engine is checked against: the installed builder and the GPU, where known."""

    builder: Builder
    version: str | None  # None: the module is not installed (or does not load) here
    gpu: GpuInfo | None
    problem: str = ""  # why ``version`` is None
    known_targets: tuple[str, ...] = ()  # tensorrt-rtx: what it can build for; () = not known


def detect_environment(builder: Builder, device: torch.device | None = None) -> Environment:
    """This machine's environment for ``builder``, without raising when the module is missing."""
    try:
        module = import_builder(builder)
    except EngineError as exc:
        return Environment(builder=builder, version=None, gpu=current_gpu(device), problem=str(exc))
    known = rtx_known_targets(module) if builder == "tensorrt-rtx" else ()
    return Environment(
        builder=builder, version=str(module.__version__), gpu=current_gpu(device), known_targets=known
    )


class _RecordingLogger:
    """Forwards TensorRT's messages to `logging` and keeps the last errors for one-line messages."""

    def __init__(self, module: ModuleType) -> None:
        self.errors: collections.deque[str] = collections.deque(maxlen=8)
        severity = module.ILogger.Severity
        self._levels = {
            severity.INTERNAL_ERROR: logging.ERROR,
            severity.ERROR: logging.ERROR,
            severity.WARNING: logging.WARNING,
            severity.INFO: logging.DEBUG,  # TensorRT's INFO is build chatter
            severity.VERBOSE: logging.DEBUG,
        }
        self._errors = {severity.INTERNAL_ERROR, severity.ERROR}

    def log(self, severity: Any, msg: str) -> None:
        if severity in self._errors:
            self.errors.append(msg.strip())
        log.log(self._levels.get(severity, logging.DEBUG), "%s", msg.strip())

    def last_error(self, default: str) -> str:
        return self.errors[-1] if self.errors else default


@functools.cache
def builder_logger(module: ModuleType) -> Any:
    """One logger per TensorRT module for the whole process.

    TensorRT registers the first logger it is given and ignores (with a warning) any other one
    passed later to a Builder or Runtime, so a logger per build would lose every message after
    the first build.
    """

    class Logger(module.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            module.ILogger.__init__(self)
            self.record = _RecordingLogger(module)

        def log(self, severity: Any, msg: str) -> None:  # called by TensorRT, from any thread
            self.record.log(severity, msg)

        def last_error(self, default: str) -> str:
            return self.record.last_error(default)

        def clear(self) -> None:
            self.record.errors.clear()

    return Logger()
