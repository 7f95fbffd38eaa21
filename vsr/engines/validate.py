"""Is a cached engine usable here? Checked against its manifest, the weights, the runtime and the GPU.

An engine is refused, with the exact `vsr build-engine` command that rebuilds it, when:

- broken: its manifest is missing or unreadable, or the file is not the one the manifest names
  (sha256), e.g. a partial copy;
- stale: it was built from other weights, or by another TensorRT(-RTX) version than the one
  installed (engines run only on the version that built them);
- foreign: it was built for another GPU (TensorRT: another model or compute capability;
  TensorRT-RTX: a compute capability not among its targets).

``unchecked`` means the files are intact but this machine cannot judge the rest (no GPU, or the
builder's module is not installed), as on a CI machine that builds TensorRT-RTX engines ahead of time.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vsr.engines._files import sha256_file
from vsr.engines.manifest import ENGINE_SUFFIX, EngineManifest, manifest_path, read_manifest, rebuild_command
from vsr.engines.targets import RTX_DEFAULT_TARGETS, Builder, Environment, detect_environment, display_name
from vsr.errors import EngineError

__all__ = ["EngineCheck", "EngineStatus", "check_engine", "find_engine", "list_engines"]

EngineStatus = Literal["valid", "unchecked", "stale", "foreign", "broken"]


@dataclass(frozen=True, kw_only=True)
class EngineCheck:
    engine: Path
    manifest: EngineManifest | None
    status: EngineStatus
    reason: str
    rebuild: str | None  # the command that builds it again here; None when the manifest is unreadable

    @property
    def valid(self) -> bool:
        return self.status == "valid"

    def refusal(self) -> str:
        """The one-line message for an engine that cannot be used."""
        if self.rebuild:
            return f"engine {self.engine} is {self.status}: {self.reason}; rebuild it: {self.rebuild}"
        if self.manifest is None:
            return (
                f"engine {self.engine} is {self.status}: {self.reason}; delete it and build the engine again"
            )
        return f"engine {self.engine} is {self.status}: {self.reason}"


def _result(
    engine: Path,
    manifest: EngineManifest | None,
    status: EngineStatus,
    reason: str,
    *,
    add_target: str | None = None,
    rebuildable: bool = True,
) -> EngineCheck:
    command = (
        rebuild_command(manifest, engine.parent, add_target=add_target) if manifest and rebuildable else None
    )
    return EngineCheck(engine=engine, manifest=manifest, status=status, reason=reason, rebuild=command)


def check_engine(
    engine: Path, *, environment: Environment | None = None, model_sha256: str | None = None
) -> EngineCheck:
    """Check ``engine`` (and the manifest beside it); never raises for a bad engine, says why instead.

    ``environment``: the runtime to check against (default: this machine's, for the engine's
    builder). ``model_sha256``: the weights it must have been built from; when not given and the
    manifest names a checkpoint file that exists here, that file's sha256 is compared.
    """
    mpath = manifest_path(engine)
    if not mpath.is_file():
        return _result(engine, None, "broken", f"it has no manifest ({mpath.name}) beside it")
    try:
        m = read_manifest(mpath)
    except EngineError as exc:
        return _result(engine, None, "broken", str(exc))
    if not engine.is_file():
        return _result(
            engine, m, "broken", f"the engine file is missing (its manifest {mpath.name} is there)"
        )
    if sha256_file(engine) != m.engine_sha256:
        return _result(
            engine, m, "broken", "the file is not the engine its manifest describes (sha256 differs)"
        )
    if model_sha256 is None and Path(m.model_source).is_file():
        model_sha256 = sha256_file(Path(m.model_source))
    if model_sha256 is not None and model_sha256 != m.model_sha256:
        return _result(
            engine,
            m,
            "stale",
            f"it was built from other weights than {m.model_name} has now "
            f"(sha256 {m.model_sha256[:12]}, now {model_sha256[:12]})",
        )
    env = environment if environment is not None else detect_environment(m.builder)
    name = display_name(m.builder)
    if env.version is None:
        return _result(engine, m, "unchecked", f"{name} is not installed here ({env.problem})")
    if env.version != m.builder_version:
        return _result(
            engine,
            m,
            "stale",
            f"it was built by {name} {m.builder_version} and {name} {env.version} is installed "
            "(an engine runs only on the version that built it)",
        )
    gpu = env.gpu
    if gpu is None:
        return _result(
            engine, m, "unchecked", f"no CUDA GPU here to check it against; it runs on {m.devices}"
        )
    here = f"this GPU is {gpu.name} (sm {gpu.compute_capability})"
    if m.builder == "tensorrt":
        if gpu.compute_capability != m.compute_capability or gpu.name != m.gpu_name:
            return _result(
                engine,
                m,
                "foreign",
                f"it was built for {m.devices}, {here}; a TensorRT engine is tuned for one GPU",
            )
    else:
        targets = m.target_compute_capabilities or RTX_DEFAULT_TARGETS
        if env.known_targets and gpu.compute_capability not in env.known_targets:
            return _result(
                engine,
                m,
                "foreign",
                f"{here}, which TensorRT-RTX {env.version} cannot target (it builds for "
                f"{', '.join(env.known_targets)}); use the tensorrt backend on this GPU",
                rebuildable=False,
            )
        if gpu.compute_capability not in targets:
            return _result(
                engine,
                m,
                "foreign",
                f"it was built ahead of time for {m.devices}, {here}",
                add_target=gpu.compute_capability,
            )
    return _result(
        engine, m, "valid", f"runs here: {name} {env.version} on {gpu.name} (sm {gpu.compute_capability})"
    )


def list_engines(folder: Path) -> list[EngineCheck]:
    """Every engine in ``folder`` (and every manifest whose engine is gone), checked, by file name."""
    environments: dict[Builder, Environment] = {}
    engines = {p for p in folder.glob("*" + ENGINE_SUFFIX) if p.is_file()}
    for mpath in folder.glob("*.json"):
        candidate = mpath.with_suffix(ENGINE_SUFFIX)
        if candidate not in engines:
            try:
                read_manifest(mpath)
            except EngineError:
                continue  # some other JSON file, not an orphaned manifest
            engines.add(candidate)
    checks = []
    for engine in sorted(engines):
        try:
            builder = read_manifest(manifest_path(engine)).builder
        except EngineError:
            checks.append(check_engine(engine))
            continue
        if builder not in environments:
            environments[builder] = detect_environment(builder)
        checks.append(check_engine(engine, environment=environments[builder]))
    return checks


def find_engine(
    folder: Path,
    *,
    builder: Builder,
    model_source: str,
    model_sha256: str,
    precision: str,
    environment: Environment,
    default_profile: str = "1080p",
) -> EngineCheck:
    """The newest valid engine in ``folder`` for these weights, precision and builder, or an EngineError.

    The error names the engine that came closest and why it was refused, or, when there is
    none, the command that builds one.
    """
    refused: list[EngineCheck] = []
    valid: list[EngineCheck] = []
    for mpath in folder.glob("*.json") if folder.is_dir() else ():
        try:
            m = read_manifest(mpath)
        except EngineError:
            continue
        if (m.builder, m.model_sha256, m.precision) != (builder, model_sha256, precision):
            continue
        check = check_engine(
            mpath.with_suffix(ENGINE_SUFFIX), environment=environment, model_sha256=model_sha256
        )
        (valid if check.valid else refused).append(check)
    if valid:
        return max(valid, key=lambda c: c.manifest.built_at if c.manifest else "")
    if refused:
        raise EngineError(max(refused, key=lambda c: c.manifest.built_at if c.manifest else "").refusal())
    args = ["vsr", "build-engine", model_source, "--precision", precision, "--profile", default_profile]
    command = shlex.join([*args, "--target", builder, "--out", str(folder)])
    raise EngineError(
        f"no {builder} engine for {model_source} ({precision}) in {folder}; build one: {command}"
    )
