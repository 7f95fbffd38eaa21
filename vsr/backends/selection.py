"""Which backend runs a model: ``--backend auto|torch|tensorrt|tensorrt-rtx|onnxruntime``.

``auto`` takes a TensorRT or TensorRT-RTX engine from the cache when one was built from these
weights, at this precision, with a profile for every input shape the run gives it, and is valid
for this GPU and the installed runtime; else PyTorch on the run's device. An explicit engine
backend without such an engine is refused with the command that builds one.

`select_backend` is a pure function of the model's identity, the input shapes, the engines found
(`scan_engine_cache`) and the device facts (`detect_device_facts`), so every branch is tested on
a CPU with manifests in a temporary folder and facts written by hand.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vsr.backends.base import available_backends
from vsr.engines.manifest import ENGINE_SUFFIX, EngineManifest, read_manifest, rebuild_command
from vsr.engines.profiles import Shape, choose_profile
from vsr.engines.targets import BUILDERS, Builder, Environment, GpuInfo, current_gpu, detect_environment
from vsr.engines.validate import EngineCheck, check_engine
from vsr.errors import ConfigError, DeviceError, EngineError
from vsr.models.descriptor import ModelDescriptor, Precision

__all__ = [
    "ENGINE_DIR",
    "BackendChoice",
    "CachedEngine",
    "DeviceFacts",
    "ModelIdentity",
    "backend_names",
    "detect_device_facts",
    "model_input_shapes",
    "scan_engine_cache",
    "select_backend",
]

ENGINE_DIR = Path("engines")  # relative to the working directory, as build-engine's --out default


def backend_names() -> list[str]:
    return ["auto", *available_backends()]


@dataclass(frozen=True, kw_only=True)
class ModelIdentity:
    """What ties a model to its engines."""

    source: str  # what `vsr build-engine` is given to build it: a checkpoint path or a built-in name
    sha256: str  # `vsr.engines.model_fingerprint`
    scale: int
    in_channels: int = 3


@dataclass(frozen=True, kw_only=True)
class CachedEngine:
    engine: Path
    manifest: EngineManifest


@dataclass(frozen=True, kw_only=True)
class DeviceFacts:
    """What this machine offers: the CUDA GPU torch sees (None: none) and the installed runtimes."""

    gpu: GpuInfo | None
    runtimes: Mapping[Builder, Environment] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class BackendChoice:
    backend: str
    engine: Path | None  # the engine an engine backend runs
    reason: str  # one line for the plan's summary


def scan_engine_cache(folder: Path) -> tuple[CachedEngine, ...]:
    """Every engine manifest in ``folder`` (a missing folder has none), by file name.

    JSON files that are not manifests are skipped: they are not engines. Whether each engine is
    intact and runs here is `check_engine`'s question, asked only of the engines a run could use.
    """
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            manifest = read_manifest(path)
        except EngineError:
            continue
        found.append(CachedEngine(engine=path.with_suffix(ENGINE_SUFFIX), manifest=manifest))
    return tuple(found)


def detect_device_facts(device: torch.device, builders: Iterable[Builder]) -> DeviceFacts:
    """This machine's GPU, and the runtimes of ``builders`` (importing each: call it only for the
    builders of engines a run could use)."""
    gpu = current_gpu(device if device.type == "cuda" else None)
    runtimes = {b: detect_environment(b, device if device.type == "cuda" else None) for b in builders}
    return DeviceFacts(gpu=gpu, runtimes=runtimes)


def model_input_shapes(
    descriptor: ModelDescriptor, input_size: tuple[int, int], *, batch: int, tile: int, tile_overlap: int
) -> tuple[Shape, ...]:
    """Every (N, C, H, W) the backend is given for frames of ``input_size`` (width, height).

    Frames are padded to the model's size multiple; tiles (``tile > 0``) are windows of one size
    (smaller only where the frame is). They are found by running the real tiler on shape-only ("meta") tensors,
    so this cannot drift from what `vsr.ops.tiling` does. N runs from 1 (a stream's short last
    batch) to ``batch``.
    """
    from vsr.ops.tiling import run_tiled

    d = descriptor
    sizes: set[tuple[int, int]] = set()

    def record(x: torch.Tensor) -> torch.Tensor:
        sizes.add((int(x.shape[-2]), int(x.shape[-1])))
        n, _, h, w = x.shape
        return torch.empty((n, d.out_channels, h * d.scale, w * d.scale), device="meta")

    width, height = input_size
    frame = torch.empty((1, d.in_channels, height, width), device="meta")
    run_tiled(record, frame, scale=d.scale, tile=tile, overlap=tile_overlap, multiple=d.size_multiple)
    return tuple(
        (n, d.in_channels, h, w) for n in range(1, batch + 1) for h, w in sorted(sizes, key=lambda s: s[::-1])
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _sizes(shapes: Sequence[Shape]) -> list[tuple[int, int]]:
    """The distinct (W, H) of ``shapes``, the most frequent first."""
    counts = Counter((s[3], s[2]) for s in shapes)
    return sorted(counts, key=lambda wh: (-counts[wh], wh))


def _size_text(shapes: Sequence[Shape]) -> str:
    sizes = _sizes(shapes)
    batch = max(s[0] for s in shapes)
    if len(sizes) == 1:
        text = "{}x{}".format(*sizes[0])
    else:
        w0, h0 = min(w for w, _ in sizes), min(h for _, h in sizes)
        w1, h1 = max(w for w, _ in sizes), max(h for _, h in sizes)
        text = f"{len(sizes)} tile sizes from {w0}x{h0} to {w1}x{h1}"
    return text + (f" at batch 1-{batch}" if batch > 1 else "")


def _profile_spec(shapes: Sequence[Shape]) -> str:
    """The ``--profile`` value that covers ``shapes``: one size, or a range tuned for the commonest."""
    sizes = _sizes(shapes)
    if len(sizes) == 1:
        return "{}x{}".format(*sizes[0])
    w0, h0 = min(w for w, _ in sizes), min(h for _, h in sizes)
    w1, h1 = max(w for w, _ in sizes), max(h for _, h in sizes)
    (wo, ho) = sizes[0]
    return f"min:{w0}x{h0},opt:{wo}x{ho},max:{w1}x{h1}"


def _covers(manifest: EngineManifest, shapes: Sequence[Shape]) -> bool:
    return all(choose_profile(manifest.profiles, s) is not None for s in shapes)


def _newest(engines: Sequence[CachedEngine]) -> CachedEngine:
    return max(engines, key=lambda e: (e.manifest.built_at, e.engine.name))


def _build_command(
    model: ModelIdentity, precision: str, shapes: Sequence[Shape], builder: Builder, folder: Path
) -> str:
    args = ["vsr", "build-engine", model.source, "--precision", precision, "--profile", _profile_spec(shapes)]
    batch = max(s[0] for s in shapes)
    args += ["--batch", str(batch)] if batch > 1 else []
    return shlex.join([*args, "--target", builder, "--out", str(folder)])


@dataclass(frozen=True)
class _Match:
    """The engines that fit a run before the device is asked, or why there is none."""

    covering: tuple[CachedEngine, ...]
    problem: str = ""  # why no engine fits; "" when ``covering`` is not empty
    other_precisions: tuple[str, ...] = ()  # the model has engines, but at these precisions only
    closest: CachedEngine | None = None  # the model's engine at this precision, whose profiles miss


def _where(folder: Path) -> str:
    return folder.as_posix().rstrip("/") + "/"


def _is_ours(e: CachedEngine, model: ModelIdentity) -> bool:
    m = e.manifest
    return (m.model_sha256, m.scale, m.in_channels) == (model.sha256, model.scale, model.in_channels)


def _match(
    model: ModelIdentity,
    precision: str,
    shapes: Sequence[Shape],
    engines: Sequence[CachedEngine],
    folder: Path,
    builders: Sequence[Builder],
) -> _Match:
    where = _where(folder)
    kind = f"{builders[0]} " if len(builders) == 1 else ""  # auto looks at every builder's engines
    ours = [e for e in engines if e.manifest.builder in builders and _is_ours(e, model)]
    if not ours:
        total = sum(e.manifest.builder in builders for e in engines)
        return _Match((), f"no {kind}engine for this model in {where} ({_plural(total, 'engine')})")
    right = [e for e in ours if e.manifest.precision == precision]
    if not right:
        others = tuple(sorted({e.manifest.precision for e in ours}))
        return _Match(
            (),
            f"no {precision} {kind}engine for this model in {where} "
            f"(it has {', '.join(others)}: --precision {others[0]} would use one)",
            other_precisions=others,
        )
    covering = tuple(e for e in right if _covers(e.manifest, shapes))
    if covering:
        return _Match(covering)
    closest = _newest(right)
    m = closest.manifest
    # every size fits some profile at that profile's own batch: only --batch has to grow
    sized = all(any(p.covers((p.max[0], *s[1:])) for p in m.profiles) for s in shapes)
    command = rebuild_command(
        m,
        closest.engine.parent,
        extra_profile=None if sized else _profile_spec(shapes),
        batch=max(s[0] for s in shapes),
    )
    accepted = "; ".join(p.describe() for p in m.profiles)
    return _Match(
        (),
        f"engine {closest.engine.name} is for this model but no profile of it ({accepted}) covers "
        f"{_size_text(shapes)}; build one that does: {command}",
        closest=closest,
    )


def _check(candidate: CachedEngine, model: ModelIdentity, facts: DeviceFacts) -> EngineCheck:
    builder = candidate.manifest.builder
    env = facts.runtimes.get(builder) or Environment(
        builder=builder, version=None, gpu=facts.gpu, problem=f"{builder} was not looked for"
    )
    return check_engine(candidate.engine, environment=env, model_sha256=model.sha256)


def _pick(checks: Sequence[EngineCheck]) -> EngineCheck:
    """A tensorrt engine (tuned for this very GPU) before a tensorrt-rtx one, then the newest."""

    def key(c: EngineCheck) -> tuple[bool, str, str]:
        m = c.manifest
        assert m is not None  # checks of readable manifests
        return (m.builder == "tensorrt", m.built_at, c.engine.name)

    return max(checks, key=key)


def _chosen(check: EngineCheck, shapes: Sequence[Shape], prefix: str, device: torch.device) -> BackendChoice:
    m = check.manifest
    assert m is not None
    return BackendChoice(
        backend=m.builder,
        engine=check.engine,
        reason=f"{prefix}: engine {check.engine.name} covers {_size_text(shapes)} and {check.reason} "
        f"-> {m.builder} on {device}",
    )


def select_backend(
    requested: str,
    *,
    model: ModelIdentity,
    precision: Precision,
    shapes: Sequence[Shape],
    engines: Sequence[CachedEngine],
    folder: Path,
    device: torch.device,
    facts: DeviceFacts,
) -> BackendChoice:
    """The backend for a run on ``device`` at ``precision`` (both resolved), and why.

    Raises a one-line `VsrError` when an explicitly requested backend cannot run here: an
    EngineError with the `vsr build-engine` command for a missing, uncovering, stale or foreign
    engine, a DeviceError for a missing GPU, precision or runtime (with its install hint).
    """
    if requested not in backend_names():
        raise ConfigError(f"unknown backend {requested!r}; choose one of: {', '.join(backend_names())}")
    if requested == "torch":
        return BackendChoice(backend="torch", engine=None, reason=f"--backend torch -> torch on {device}")
    if requested == "onnxruntime":
        if precision not in ("fp32", "fp16"):
            raise DeviceError(
                f"the onnxruntime backend runs fp32 or fp16, not {precision}; "
                "use --precision fp32 or fp16, or --backend torch for bf16"
            )
        return BackendChoice(
            backend="onnxruntime", engine=None, reason=f"--backend onnxruntime -> onnxruntime on {device}"
        )
    if requested == "auto":
        return _select_auto(model, precision, shapes, engines, folder, device, facts)
    builder: Builder = "tensorrt" if requested == "tensorrt" else "tensorrt-rtx"
    if device.type != "cuda" or facts.gpu is None:
        seen = "torch sees none" if facts.gpu is None else f"the run is on {device}"
        raise DeviceError(
            f"the {builder} backend runs on a CUDA GPU only and {seen}; use --backend torch or auto"
        )
    if precision not in ("fp16", "fp32"):
        raise DeviceError(
            f"the {builder} backend runs fp16 or fp32 engines, not {precision}; "
            "use --precision fp16, or --backend torch for bf16"
        )
    env = facts.runtimes.get(builder)
    if env is None or env.version is None:
        raise DeviceError(env.problem if env is not None else f"{builder} was not looked for")
    match = _match(model, precision, shapes, engines, folder, (builder,))
    if not match.covering:
        if match.closest is not None:
            raise EngineError(match.problem)
        command = _build_command(model, precision, shapes, builder, folder)
        there = (
            f" (there is one at {', '.join(match.other_precisions)}: pass --precision {match.other_precisions[0]})"
            if match.other_precisions
            else ""
        )
        raise EngineError(
            f"no {builder} engine for {model.source} ({precision}, {_size_text(shapes)}) in {folder}{there}; "
            f"build one: {command}"
        )
    checks = [_check(e, model, facts) for e in match.covering]
    valid = [c for c in checks if c.valid]
    if not valid:
        newest = max(checks, key=lambda c: (c.manifest.built_at if c.manifest else "", c.engine.name))
        raise EngineError(newest.refusal())
    return _chosen(_pick(valid), shapes, f"--backend {builder}", device)


def _select_auto(
    model: ModelIdentity,
    precision: Precision,
    shapes: Sequence[Shape],
    engines: Sequence[CachedEngine],
    folder: Path,
    device: torch.device,
    facts: DeviceFacts,
) -> BackendChoice:
    fallback = f"-> torch on {device}"
    if device.type != "cuda":
        # engines run on CUDA only: say what the cache holds for this model, and why it is not used
        ours = sum(_is_ours(e, model) for e in engines)
        where = _where(folder)
        found = (
            f"{_plural(ours, 'engine')} for this model in {where}"
            if ours
            else f"no engine for this model in {where} ({_plural(len(engines), 'engine')})"
        )
        why = "no CUDA device" if facts.gpu is None else f"the run is on {device} and engines need CUDA"
        return BackendChoice(backend="torch", engine=None, reason=f"auto: {found}, {why} {fallback}")
    if precision == "bf16":
        why = "bf16 runs on torch only (engines are fp16 or fp32)"
        return BackendChoice(backend="torch", engine=None, reason=f"auto: {why} {fallback}")
    match = _match(model, precision, shapes, engines, folder, BUILDERS)
    if not match.covering:
        return BackendChoice(backend="torch", engine=None, reason=f"auto: {match.problem} {fallback}")
    checks = [_check(e, model, facts) for e in match.covering]
    valid = [c for c in checks if c.valid]
    if valid:
        return _chosen(_pick(valid), shapes, "auto", device)
    newest = max(checks, key=lambda c: (c.manifest.built_at if c.manifest else "", c.engine.name))
    env = facts.runtimes.get(newest.manifest.builder) if newest.manifest else None
    why = env.problem if env is not None and env.version is None else newest.refusal()
    return BackendChoice(backend="torch", engine=None, reason=f"auto: {why} {fallback}")
