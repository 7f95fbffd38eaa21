"""`UpscaleOptions`: everything a run can be asked to do, as one frozen, typed value."""

from __future__ import annotations

import re
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from vsr.errors import ConfigError

__all__ = [
    "DEFAULT_TEMPORAL_STRENGTH",
    "UpscaleOptions",
    "load_options",
    "parse_size",
    "read_toml",
    "unused_options",
]

# --temporal-strength's default: on vtest (x2, DIS "fine") it removes 32.6 % of compact-x2's
# warping error for 0.035 dB Y-PSNR and 30.6 % of gan-x2's for 0.018 dB; 0.7 costs twice the PSNR
# on vtest, and compact-x2 0.33 dB on bigbuckbunny's slow animation (docs/BENCHMARKS.md).
DEFAULT_TEMPORAL_STRENGTH = 0.6


@dataclass(frozen=True, kw_only=True)
class UpscaleOptions:
    """Options of `vsr upscale` / `vsr.upscale()`; defaults are what the CLI uses."""

    model: str = "auto"  # built-in name, "bicubic"/"lanczos", or a checkpoint path
    scale: int | None = None  # output scale; None: the model's own (2 for the classic resizers)
    size: tuple[int, int] | None = None  # exact output (width, height); -1 keeps the aspect ratio
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"
    cuda_graph: bool = False  # torch on CUDA: replay a captured CUDA graph per input shape
    # torch: a frozen torch.compile build per input shape; None: on for long inputs on the CPU
    compile: bool | None = None
    batch: int = 1
    tile: int = 0  # input pixels per tile side; 0: whole frames
    tile_overlap: int | None = None  # None: the model's receptive radius
    temporal: Literal["off", "on"] = "off"  # blend with the previous output warped by LR motion
    # the previous output's weight where its warp is fully trusted
    temporal_strength: float = DEFAULT_TEMPORAL_STRENGTH
    # reuse the previous output for a frame equal to it (within noise); None: on for live inputs
    reuse_still: bool | None = None
    # with reuse_still: restore only the tiles near a change when that is cheaper (vsr.pipeline.regions)
    reuse_regions: bool = True
    denoise: str | float = "off"  # "off", "auto", or the noise sigma on the 0..255 scale
    denoiser: str | None = None  # denoiser for --denoise; None: the built-in one
    # with --denoise: average each frame with the ones before it, motion-compensated, first
    denoise_temporal: Literal["off", "on"] = "on"
    codec: str = "libx264"
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    encoder_threads: int = 0
    # libx264/libx265 encoders on GOP-aligned chunks at once (a keyframe every 2 s); 1: one encoder
    encoder_instances: int = 1
    deinterlace: Literal["auto", "on", "off"] = "auto"
    queue_size: int = 8
    overwrite: bool = False
    # live inputs (rtsp://, rtmp://, http(s)://, /dev/videoN): see vsr.media.live, vsr.pipeline.live
    live: bool | None = None  # drop frames to bound latency; None: on for live inputs, off for files
    max_latency: float = 1.0  # seconds a frame may wait for the Restore stage in live mode
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    open_timeout: float = 10.0  # seconds
    read_timeout: float = 5.0  # seconds without data that count as a disconnect
    reconnect_attempts: int = 10  # consecutive failed attempts before giving up; 0: never, -1: forever
    reconnect_interval: float = 1.0  # seconds before the first attempt; doubles, at most 30 s
    segment: float | None = None  # seconds of video per output file (--segment 10m); None: one file

    def __post_init__(self) -> None:
        _check_types(self)
        if self.precision not in ("auto", "fp32", "fp16", "bf16"):
            raise ConfigError(f"--precision must be auto, fp32, fp16 or bf16, got {self.precision!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
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
        if self.encoder_instances != 1:
            from vsr.media.chunked_encode import check_encoder_instances

            check_encoder_instances(self.encoder_instances, self.codec)
        _check_restore_steps(self)
        _check_live(self)

    @property
    def denoise_level(self) -> float | Literal["auto"] | None:
        """``--denoise`` as the Restore stage takes it: None (off), "auto", or sigma (0..255)."""
        return _denoise_level(self.denoise)


# What each option holds, so that a preset's `overwrite = "no"` (a true string) or the API's
# `scale=2.5` is refused with the option's name instead of acting or failing deep in a run.
_KINDS: dict[str, tuple[str, bool]] = {  # name -> (kind, None allowed)
    "model": ("path", False), "scale": ("integer", True), "size": ("size", True),
    "device": ("text", False), "precision": ("text", False), "backend": ("text", False),
    "cuda_graph": ("boolean", False), "compile": ("boolean", True), "batch": ("integer", False),
    "tile": ("integer", False), "tile_overlap": ("integer", True), "temporal": ("text", False),
    "temporal_strength": ("number", False), "reuse_still": ("boolean", True),
    "reuse_regions": ("boolean", False), "denoise": ("text or number", False), "denoiser": ("path", True),
    "denoise_temporal": ("text", False), "codec": ("text", False), "crf": ("integer", True),
    "preset": ("text", True), "pix_fmt": ("text", True), "encoder_threads": ("integer", False),
    "encoder_instances": ("integer", False), "deinterlace": ("text", False), "queue_size": ("integer", False),
    "overwrite": ("boolean", False), "live": ("boolean", True), "max_latency": ("number", False),
    "rtsp_transport": ("text", False), "open_timeout": ("number", False), "read_timeout": ("number", False),
    "reconnect_attempts": ("integer", False), "reconnect_interval": ("number", False),
    "segment": ("number", True),
}  # fmt: skip
_WORDS = {
    "text": "text",
    "path": "a name or a path",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "size": "a size WIDTHxHEIGHT",
    "text or number": "text or a number",
}


def _is_kind(value: object, kind: str) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "text":
        return isinstance(value, str)
    if kind == "path":
        return isinstance(value, str | PathLike)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return number
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "text or number":
        return isinstance(value, str) or number
    # size: (width, height), whole numbers
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )


def _check_types(o: UpscaleOptions) -> None:
    for name, (kind, optional) in _KINDS.items():
        value = getattr(o, name)
        if (value is None and optional) or _is_kind(value, kind):
            continue
        flag = "--" + name.replace("_", "-") if name != "encoder_instances" else "--encoders"
        raise ConfigError(f"{flag} must be {_WORDS[kind]}, got {value!r}")


def _denoise_level(value: str | float) -> float | Literal["auto"] | None:
    text = str(value).strip().lower()
    if text in ("off", "auto"):
        return None if text == "off" else "auto"
    try:
        sigma = float(text)
    except ValueError:
        raise ConfigError(f"--denoise must be off, auto or a noise sigma (0..255), got {value!r}") from None
    if not 0.0 < sigma <= 255.0:
        raise ConfigError(
            f"--denoise sigma must be in (0, 255] on the 0..255 scale, got {value!r}; use off for none"
        )
    return sigma


def _check_restore_steps(o: UpscaleOptions) -> None:
    """The optional Restore steps: temporal smoothing, still-frame reuse, denoise pre-pass."""
    if o.temporal not in ("off", "on"):
        raise ConfigError(f"--temporal must be off or on, got {o.temporal!r}")
    if isinstance(o.temporal_strength, bool) or not isinstance(o.temporal_strength, int | float):
        raise ConfigError(f"--temporal-strength must be a number in [0, 1], got {o.temporal_strength!r}")
    if not 0.0 <= o.temporal_strength <= 1.0:
        raise ConfigError(f"--temporal-strength must be in [0, 1], got {o.temporal_strength}")
    if o.denoise_temporal not in ("off", "on"):
        raise ConfigError(f"--denoise-temporal must be off or on, got {o.denoise_temporal!r}")
    level = _denoise_level(o.denoise)
    if level is not None:
        from vsr.pipeline.denoise_pass import denoiser_to_load

        denoiser_to_load(o.denoiser)  # one is given or ships, or a one-line error now
    if level is None and o.denoiser is not None:
        raise ConfigError("--denoiser is given but --denoise is off; add --denoise auto or --denoise SIGMA")


def _check_live(o: UpscaleOptions) -> None:
    if o.max_latency <= 0:
        raise ConfigError(f"--max-latency must be positive seconds, got {o.max_latency}")
    if o.rtsp_transport not in ("tcp", "udp"):
        raise ConfigError(f"--rtsp-transport must be tcp or udp, got {o.rtsp_transport!r}")
    if o.open_timeout <= 0 or o.read_timeout <= 0:
        raise ConfigError("--open-timeout and --read-timeout must be positive seconds")
    if o.reconnect_attempts < -1:
        raise ConfigError(f"--reconnect-attempts must be -1 (forever), 0 or more, got {o.reconnect_attempts}")
    if not 0 <= o.reconnect_interval <= 30:
        raise ConfigError(f"--reconnect-interval must be 0..30 seconds, got {o.reconnect_interval}")
    if o.segment is not None and o.segment <= 0:
        raise ConfigError(f"--segment must be a positive duration, got {o.segment}")


def unused_options(options: UpscaleOptions) -> list[str]:
    """Notes for options given without the one they refine (a preset may set them for later)."""
    notes = []
    if options.tile_overlap is not None and not options.tile:
        notes.append("--tile-overlap is unused without --tile")
    if options.temporal_strength != DEFAULT_TEMPORAL_STRENGTH and options.temporal != "on":
        notes.append("--temporal-strength is unused without --temporal on")
    if options.denoise_temporal != "on" and options.denoise_level is None:
        notes.append("--denoise-temporal is unused without --denoise")
    return notes


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


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML config file's tables, or a one-line `ConfigError` saying why it cannot be read."""
    import tomllib

    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None


def load_options(config: str | None = None, **overrides: object) -> UpscaleOptions:
    """Defaults, then a TOML preset (``configs/*.toml``), then explicit overrides (None = not given)."""
    import dataclasses

    values: dict[str, object] = {}
    given = {k: v for k, v in overrides.items() if v is not None}
    if config is not None:
        path = Path(config)
        data = read_toml(path)
        section = data.get("upscale", data)
        if not isinstance(section, dict):
            raise ConfigError(f"config {path}: [upscale] must be a table")
        for key, value in section.items():
            kind = _KINDS.get(key, ("", True))[0]
            # as TOML writes them: sizes and durations as text ("3840x2160", "10m")
            loose = kind in ("size", "number") and isinstance(value, str | list)
            if kind and not loose and not _is_kind(value, kind):
                raise ConfigError(f"config {path}: {key} must be {_WORDS[kind]}, got {value!r}")
        values.update(section)
        # the command line's --scale replaces a preset's size, and its --size a preset's scale
        if "scale" in given and "size" not in given:
            values.pop("size", None)
        if "size" in given and "scale" not in given:
            values.pop("scale", None)
    values.update(given)
    known = {f.name for f in dataclasses.fields(UpscaleOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if isinstance(values.get("size"), str):
        values["size"] = parse_size(str(values["size"]))
    elif isinstance(values.get("size"), list):
        values["size"] = tuple(values["size"])  # type: ignore[arg-type]
    if isinstance(values.get("segment"), str):
        from vsr.media.segments import parse_duration

        values["segment"] = parse_duration(str(values["segment"]))
    try:
        return UpscaleOptions(**values)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ConfigError(f"invalid options: {exc}") from None
