"""vsr: streaming video super-resolution with exact timestamps and untouched audio.

    >>> import vsr
    >>> summary = vsr.upscale("in.mp4", "out.mp4", model="lanczos", scale=2)
    >>> summary = vsr.upscale_images("frames/", "big/", model="bicubic", scale=2)

The pipeline names load on first use, so ``import vsr.models`` or ``import vsr.ops`` does not
pull in PyAV and the threads machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vsr.errors import (
    Cancelled,
    ConfigError,
    DeviceError,
    EngineError,
    InputError,
    ModelError,
    OutputError,
    VsrError,
)

__version__ = "0.1.0"

_LAZY = {
    "upscale": "vsr.api",
    "upscale_images": "vsr.pipeline.images",
    "ImageRunSummary": "vsr.pipeline.images",
    "UpscaledImage": "vsr.pipeline.images",
    "UpscaleOptions": "vsr.pipeline.options",
    "Pipeline": "vsr.pipeline.runner",
    "Progress": "vsr.pipeline.runner",
    "RunSummary": "vsr.pipeline.stats",
    "StageStats": "vsr.pipeline.stats",
}

if TYPE_CHECKING:
    from vsr.api import upscale
    from vsr.pipeline.images import ImageRunSummary, UpscaledImage, upscale_images
    from vsr.pipeline.options import UpscaleOptions
    from vsr.pipeline.runner import Pipeline, Progress
    from vsr.pipeline.stats import RunSummary, StageStats


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vsr' has no attribute {name!r}")


__all__ = [
    "Cancelled",
    "ConfigError",
    "DeviceError",
    "EngineError",
    "ImageRunSummary",
    "InputError",
    "ModelError",
    "OutputError",
    "Pipeline",
    "Progress",
    "RunSummary",
    "StageStats",
    "UpscaleOptions",
    "UpscaledImage",
    "VsrError",
    "__version__",
    "upscale",
    "upscale_images",
]
