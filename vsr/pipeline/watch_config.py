"""The ``cameras.toml`` of `vsr watch`: the shared model settings and one ``[[camera]]`` per feed.

Top-level keys are the run's (one model on one device for every feed); each ``[[camera]]``
table is a feed with its own input, output and reconnect policy. The optional Restore steps
(``reuse_still``, ``reuse_regions``, ``temporal``, ``temporal_strength``, ``denoise``, ``denoiser``,
``denoise_temporal``) may be set at
the top level, as every camera's default, and in a camera's table, for that camera. Every error
is one line that names the file, the camera and the key. Relative paths (``url`` when it is a
file, ``output``, ``denoiser`` when that file exists) are relative to the folder of the TOML
file, so a config runs the same from any directory. See ``configs/cameras.example.toml``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from vsr.errors import ConfigError, ModelError
from vsr.media.containers import container_for
from vsr.media.encoders import check_encoder_settings
from vsr.media.live_input import check_scheme, live_kind, redact
from vsr.media.segments import parse_duration
from vsr.models.loading import check_model_name
from vsr.pipeline.denoise_pass import denoiser_to_load
from vsr.pipeline.options import UpscaleOptions, read_toml

__all__ = ["CameraConfig", "WatchConfig", "load_watch_config"]

_Check = Callable[[object], str | None]  # None: fine; else what is wrong, e.g. "must be positive"


def _integer(low: int | None = None, high: int | None = None) -> _Check:
    def check(v: object) -> str | None:
        if not isinstance(v, int) or isinstance(v, bool):
            return "must be a whole number"
        if (low is not None and v < low) or (high is not None and v > high):
            return f"must be {low}..{high}" if high is not None else f"must be at least {low}"
        return None

    return check


def _seconds(*, zero: bool = False, high: float | None = None) -> _Check:
    def check(v: object) -> str | None:
        if not isinstance(v, int | float) or isinstance(v, bool):
            return "must be a number of seconds"
        if v < 0 or (v == 0 and not zero) or (high is not None and v > high):
            bound = f"{'0' if zero else 'above 0'}..{high:g}" if high is not None else "positive"
            return f"must be {bound} seconds"
        return None

    return check


def _text(*choices: str) -> _Check:
    def check(v: object) -> str | None:
        if choices and (not isinstance(v, str) or v not in choices):
            return f"must be one of {', '.join(choices)}"
        if not isinstance(v, str) or not v.strip():
            return "must be a non-empty string"
        return None

    return check


def _duration(v: object) -> str | None:
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        return "must be a duration such as 10m, 30s, 1h or a number of seconds"
    try:
        parse_duration(v)
    except ConfigError:
        return "must be a positive duration such as 10m, 30s, 1h or a number of seconds"
    return None


def _boolean(v: object) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _strength(v: object) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
        return "must be a number in 0..1"
    return None


def _denoise(v: object) -> str | None:
    if v in ("off", "auto") or (not isinstance(v, bool) and isinstance(v, int | float) and 0 < v <= 255):
        return None
    return 'must be "off", "auto" or a noise sigma in (0, 255] (0..255 scale)'


# the run's keys -> UpscaleOptions fields of the same name
_RUN_KEYS: dict[str, _Check] = {
    "model": _text(),
    "scale": _integer(1, 8),
    "device": _text(),
    "precision": _text("auto", "fp32", "fp16", "bf16"),
    "batch": _integer(1),
    "compile": _boolean,  # torch.compile builds; default: off (feeds are live: a build holds the first frame)
    "max_latency": _seconds(),
    "codec": _text(),
    "crf": _integer(0, 63),
    "preset": _text(),
}
_CAMERA_KEYS: dict[str, _Check] = {
    "name": _text(),
    "url": _text(),
    "output": _text(),
    "segment": _duration,
    "reconnect_attempts": _integer(-1),
    "reconnect_interval": _seconds(zero=True, high=30),
    "read_timeout": _seconds(),
    "open_timeout": _seconds(),
    "rtsp_transport": _text("tcp", "udp"),
}
# the optional Restore steps, per camera: top-level values are every camera's defaults
_RESTORE_KEYS: dict[str, _Check] = {
    "reuse_still": _boolean,  # default: on for live inputs, off for files (as `vsr upscale`)
    "reuse_regions": _boolean,  # default: on (with reuse_still)
    "temporal": _text("off", "on"),
    "temporal_strength": _strength,
    "denoise": _denoise,
    "denoiser": _text(),  # default: the built-in denoiser
    "denoise_temporal": _text("off", "on"),  # default: on (with denoise)
}
_REQUIRED = ("name", "url", "output")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, kw_only=True)
class CameraConfig:
    """One feed: where it comes from, where it goes, and its options (the run's plus its own)."""

    name: str
    url: str  # a live URL as written, or a file path made absolute
    output: Path
    # the run's settings with this camera's reconnect/timeout/segment and Restore steps; its
    # reuse_still is resolved, its denoiser the checkpoint or built-in name to load (denoise on)
    options: UpscaleOptions

    @property
    def is_live(self) -> bool:
        return live_kind(self.url) is not None


@dataclass(frozen=True, kw_only=True)
class WatchConfig:
    path: Path
    options: UpscaleOptions  # the run's settings (model, device, batch, ...)
    cameras: tuple[CameraConfig, ...]


def load_watch_config(path: str | Path, *, overwrite: bool = False) -> WatchConfig:
    """Read and check ``path``; raises `ConfigError` with one line naming the file, camera and key."""
    path = Path(path)
    data = read_toml(path)
    cameras = data.pop("camera", None)
    _check_keys(path, "", data, _RUN_KEYS | _RESTORE_KEYS)
    defaults = {key: data.pop(key) for key in _RESTORE_KEYS if key in data}  # applied per camera
    # the torch backend takes any frame size and batch; an engine is built for given shapes
    options = _options(path, "", UpscaleOptions(backend="torch", overwrite=overwrite), data)
    try:
        if options.model != "auto":
            check_model_name(options.model)
    except ModelError as exc:
        raise ModelError(f"{path}: model: {exc}") from None
    if not isinstance(cameras, list) or not cameras or not all(isinstance(c, dict) for c in cameras):
        raise ConfigError(f"{path}: needs at least one [[camera]] table (name, url, output)")
    folder = path.parent
    parsed = [_camera(path, folder, n, table, options, defaults) for n, table in enumerate(cameras, 1)]
    _check_unique(path, parsed)
    return WatchConfig(path=path, options=options, cameras=tuple(parsed))


def _where(path: Path, camera: str) -> str:
    return f"{path}: {camera}: " if camera else f"{path}: "


def _check_keys(path: Path, camera: str, table: Mapping[str, object], known: dict[str, _Check]) -> None:
    for key, value in table.items():
        if key not in known:
            raise ConfigError(
                f"{_where(path, camera)}unknown key {key!r}; known keys: {', '.join(known)}"
                + ("" if camera else ", and [[camera]] tables")
            )
        problem = known[key](value)
        if problem is not None:
            raise ConfigError(f"{_where(path, camera)}{key} {problem}, got {value!r}")


def _options(path: Path, camera: str, base: UpscaleOptions, values: Mapping[str, object]) -> UpscaleOptions:
    try:
        return dataclasses.replace(base, **values)  # type: ignore[arg-type]
    except ConfigError as exc:  # a combination the single keys cannot show
        raise ConfigError(f"{_where(path, camera)}{exc}") from None


def _camera(
    path: Path,
    folder: Path,
    number: int,
    table: dict[str, object],
    run: UpscaleOptions,
    defaults: Mapping[str, object],
) -> CameraConfig:
    name = table.get("name")
    label = f"camera {name!r}" if isinstance(name, str) and name else f"camera #{number}"
    _check_keys(path, label, table, _CAMERA_KEYS | _RESTORE_KEYS)
    for key in _REQUIRED:
        if key not in table:
            raise ConfigError(f"{path}: {label}: missing key {key!r} (every camera needs name, url, output)")
    name = str(table["name"])
    if not _NAME.match(name):
        raise ConfigError(
            f"{path}: {label}: name must be letters, digits, '.', '_' or '-' (it names the feed in reports), got {name!r}"
        )
    url = str(table["url"])
    if live_kind(url) is None:
        try:
            check_scheme(url)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {label}: url {exc}") from None
        url = str(folder / Path(url).expanduser())
    output = folder / Path(str(table["output"])).expanduser()
    try:
        kind = container_for(output)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {label}: output {exc}") from None
    if kind.playlist:
        raise ConfigError(
            f"{path}: {label}: output {output.name}: cameras record to .mp4, .mov, .mkv or .ts files "
            "(with segment to cut them); HLS playlists are written by vsr upscale"
        )
    own = {k: v for k, v in table.items() if k not in _REQUIRED and k not in _RESTORE_KEYS}
    if "segment" in own:
        own["segment"] = parse_duration(own["segment"])  # type: ignore[arg-type]
    own |= _restore_steps(f"{path}: {label}: ", folder, defaults, table, live=live_kind(url) is not None)
    options = _options(path, label, run, own)
    try:
        check_encoder_settings(options.codec, options.crf, options.preset)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {label}: {exc}") from None
    return CameraConfig(name=name, url=url, output=output, options=options)


def _restore_steps(
    where: str, folder: Path, defaults: Mapping[str, object], table: Mapping[str, object], *, live: bool
) -> dict[str, object]:
    """A camera's Restore steps as `UpscaleOptions` fields: its own keys over the run's defaults."""
    steps = {**defaults, **{k: v for k, v in table.items() if k in _RESTORE_KEYS}}
    steps.setdefault("reuse_still", live)  # a camera's unchanged frames skip the model; a file's run
    denoiser = steps.pop("denoiser", None)
    if steps.get("denoise", "off") == "off":
        if "denoiser" in table:  # a top-level denoiser is a default for the cameras that denoise
            raise ConfigError(f'{where}denoiser is given but denoise is off; set denoise = "auto" or a sigma')
        return steps
    given = None
    if denoiser is not None:
        relative = folder / Path(str(denoiser)).expanduser()
        given = str(relative) if relative.exists() else str(denoiser)  # else a built-in name
    try:
        steps["denoiser"] = denoiser_to_load(given)
    except ConfigError:
        raise ConfigError(
            f"{where}denoise = {steps['denoise']!r} needs a denoiser and this install ships none; "
            'set denoiser = "CHECKPOINT" (an FFDNet-style model)'
        ) from None
    return steps


def _check_unique(path: Path, cameras: list[CameraConfig]) -> None:
    names: set[str] = set()
    writers: dict[Path, str] = {}
    for camera in cameras:
        if camera.name in names:
            raise ConfigError(f"{path}: camera {camera.name!r}: name is used by another camera too")
        names.add(camera.name)
        target = camera.output.resolve()
        if target in writers:
            raise ConfigError(
                f"{path}: camera {camera.name!r}: output {camera.output} is also camera "
                f"{writers[target]!r}'s output; give each camera its own"
            )
        writers[target] = camera.name
        if not camera.is_live and Path(camera.url).resolve() == target:
            raise ConfigError(f"{path}: camera {camera.name!r}: output is its own input {redact(camera.url)}")
