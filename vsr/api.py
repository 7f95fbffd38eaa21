"""The library entry point: `vsr.upscale(...)`, the same job as the CLI's."""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from typing import Any

from vsr.errors import ConfigError
from vsr.pipeline.images import is_image_input
from vsr.pipeline.options import UpscaleOptions, load_options
from vsr.pipeline.runner import Pipeline, Progress
from vsr.pipeline.stats import RunSummary

__all__ = ["upscale"]


def upscale(
    input: str | PathLike[str],
    output: str | PathLike[str],
    options: UpscaleOptions | None = None,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    **option_values: Any,
) -> RunSummary:
    """Upscale ``input`` into ``output`` and return the run's summary.

    Options come either as an `UpscaleOptions` or as its fields by keyword
    (``upscale("in.mp4", "out.mp4", model="lanczos", scale=2)``). Raises a `vsr.errors.VsrError`
    subclass for anything the caller can fix; a failed or interrupted run keeps what it encoded
    under a temporary name and says where in the error message.
    """
    if options is not None and option_values:
        raise TypeError("pass either options= or option keywords, not both")
    if options is not None and not isinstance(options, UpscaleOptions):
        raise ConfigError(
            f"options must be an UpscaleOptions (or the options as keywords), got {type(options).__name__}"
        )
    if is_image_input(input, output):
        # a different job with a different summary: its own function keeps both return types exact
        raise ConfigError(f"{input} is an image or a folder of images; use vsr.upscale_images() for it")
    if options is None:
        options = load_options(None, **option_values)
    return Pipeline(input, output, options, on_progress=on_progress).run()
