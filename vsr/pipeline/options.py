"""`UpscaleOptions`: everything a run can be asked to do, as one frozen, typed value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vsr.errors import ConfigError

__all__ = ["UpscaleOptions", "load_options", "parse_size"]


@dataclass(frozen=True, kw_only=True)
class UpscaleOptions:
    """Options of `vsr upscale` / `vsr.upscale()`; defaults are what the CLI uses."""

    model: str = "auto"  # built-in name, "bicubic"/"lanczos", or a checkpoint path
    scale: int | None = None  # output scale; None: the model's own (2 for the classic resizers)
    size: tuple[int, int] | None = None  # exact output (width, height); -1 keeps the aspect ratio
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"
    batch: int = 1
    tile: int = 0  # input pixels per tile side; 0: whole frames
    tile_overlap: int | None = None  # None: the model's receptive radius
    codec: str = "libx264"
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    encoder_threads: int = 0
    deinterlace: Literal["auto", "on", "off"] = "auto"
    queue_size: int = 8
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.scale is not None and not 1 <= self.scale <= 8:
            raise ConfigError(f"--scale must be between 1 and 8, got {self.scale}")
        if self.batch < 1:
            raise ConfigError(f"--batch must be at least 1, got {self.batch}")
        if self.tile < 0 or (0 < self.tile < 16):
            raise ConfigError(f"--tile must be 0 (off) or at least 16 pixels, got {self.tile}")
        if self.tile_overlap is not None and self.tile_overlap < 0:
            raise ConfigError(f"--tile-overlap must be >= 0, got {self.tile_overlap}")
        if self.queue_size < 1:
            raise ConfigError(f"queue size must be at least 1, got {self.queue_size}")
        if self.scale is not None and self.size is not None:
            raise ConfigError("give either --scale or --size, not both")
        if self.deinterlace not in ("auto", "on", "off"):
            raise ConfigError(f"--deinterlace must be auto, on or off, got {self.deinterlace!r}")


def parse_size(text: str) -> tuple[int, int]:
    """'3840x2160' -> (3840, 2160); one side may be -1 to keep the aspect ratio."""
    parts = text.lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--size must look like 3840x2160 (or 3840x-1), got {text!r}") from None
    if (width <= 0 and width != -1) or (height <= 0 and height != -1) or (width == height == -1):
        raise ConfigError(f"--size needs positive sizes (one side may be -1), got {text!r}")
    return width, height


def load_options(config: str | None = None, **overrides: object) -> UpscaleOptions:
    """Defaults, then a TOML preset (``configs/*.toml``), then explicit overrides (None = not given)."""
    import dataclasses
    import tomllib
    from pathlib import Path

    values: dict[str, object] = {}
    if config is not None:
        path = Path(config)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
        section = data.get("upscale", data)
        if not isinstance(section, dict):
            raise ConfigError(f"config {path}: [upscale] must be a table")
        values.update(section)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(UpscaleOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if isinstance(values.get("size"), str):
        values["size"] = parse_size(str(values["size"]))
    elif isinstance(values.get("size"), list):
        values["size"] = tuple(values["size"])  # type: ignore[arg-type]
    try:
        return UpscaleOptions(**values)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ConfigError(f"invalid options: {exc}") from None
