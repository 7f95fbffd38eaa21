"""`EngineManifest`: the identity of a built engine, in its file name and in a JSON file beside it.

The name carries what changes the engine (weights, ONNX export, precision, shape profiles,
batch, builder and version, GPU or target compute capabilities), so two builds that differ never
share a name; the manifest carries the same facts in full, plus the engine's own sha256, so a
truncated, replaced or hand-copied engine is told apart from the one that was built. Validity is
never judged by file size.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from vsr.engines._files import write_atomically
from vsr.engines.profiles import ShapeProfile, profile_tag
from vsr.engines.targets import BUILDERS, RTX_DEFAULT_TARGETS, Builder, builder_tag
from vsr.errors import EngineError

__all__ = [
    "ENGINE_SUFFIX",
    "MANIFEST_FORMAT",
    "EngineManifest",
    "EnginePrecision",
    "engine_file_name",
    "manifest_path",
    "read_manifest",
    "rebuild_command",
    "rtx_device_tag",
    "write_manifest",
]

EnginePrecision = Literal["fp32", "fp16"]
MANIFEST_FORMAT = 1
ENGINE_SUFFIX = ".engine"
_MANIFEST_SUFFIX = ".json"
_INT_LIST = re.compile(r"\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]")


@dataclass(frozen=True, kw_only=True)
class EngineManifest:
    """Everything known about one built engine; JSON beside it (`manifest_path`)."""

    format: int = MANIFEST_FORMAT
    engine_file: str  # the engine's file name, in the manifest's folder
    engine_sha256: str
    engine_bytes: int
    model_source: str  # what build-engine was given: the rebuild command names it
    model_name: str
    model_sha256: str  # `model_fingerprint`: the checkpoint's sha256, or a hash of the weights
    architecture: str
    scale: int
    in_channels: int
    out_channels: int
    size_multiple: int
    precision: EnginePrecision
    profiles: tuple[ShapeProfile, ...]
    profile_specs: tuple[str, ...]  # the --profile values, for the rebuild command
    batch: int
    builder: Builder
    builder_version: str
    network_typing: Literal["strong", "weak"]  # strong: precision from the ONNX; weak: from builder flags
    gpu_name: str | None  # tensorrt: the GPU it was built on, and for
    compute_capability: str | None  # tensorrt: that GPU's, e.g. "9.0"
    target_compute_capabilities: tuple[str, ...]  # tensorrt-rtx: AOT targets; () = the builder's default
    optimization_level: int
    onnx_sha256: str
    onnx_opset: int
    vsr_version: str
    built_at: str  # ISO 8601, UTC
    build_seconds: float
    parity_psnr_db: float | None  # vs PyTorch fp32 on the build GPU; None when none could run it
    parity_note: str  # how parity was measured, or why it was not

    def to_json(self) -> str:
        data = asdict(self)
        data["profiles"] = [p.to_json() for p in self.profiles]
        text = json.dumps(data, indent=2)
        # shapes on one line each: [1, 3, 720, 1280], not five lines
        return (
            _INT_LIST.sub(lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
            + "\n"
        )

    @classmethod
    def from_json(cls, text: str, *, source: str) -> EngineManifest:
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if data.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, this vsr reads {MANIFEST_FORMAT}")
            return cls(**_typed(data))
        except (ValueError, KeyError, TypeError) as exc:
            raise EngineError(f"{source} is not a readable vsr engine manifest ({exc})") from None

    @property
    def devices(self) -> str:
        """Which GPUs it runs on, in words."""
        if self.builder == "tensorrt":
            return f"{self.gpu_name} (sm {self.compute_capability})"
        targets = self.target_compute_capabilities
        return "sm " + ", ".join(targets or RTX_DEFAULT_TARGETS) + ("" if targets else " (the default)")


def _typed(data: Mapping[str, Any]) -> dict[str, Any]:
    """JSON values as the dataclass's types, every field present and nothing else."""
    names = {f.name for f in fields(EngineManifest)}
    missing, unknown = names - data.keys(), data.keys() - names
    if missing or unknown:
        raise ValueError(f"missing {sorted(missing)}, unknown {sorted(unknown)}")
    out = dict(data)
    out["profiles"] = tuple(ShapeProfile.from_json(p) for p in data["profiles"])
    out["profile_specs"] = tuple(str(s) for s in data["profile_specs"])
    out["target_compute_capabilities"] = tuple(str(s) for s in data["target_compute_capabilities"])
    if out["builder"] not in BUILDERS:
        raise ValueError(f"builder {out['builder']!r}")
    if out["precision"] not in ("fp32", "fp16"):
        raise ValueError(f"precision {out['precision']!r}")
    for key in (
        "engine_bytes",
        "scale",
        "in_channels",
        "out_channels",
        "size_multiple",
        "batch",
        "onnx_opset",
    ):
        if not isinstance(out[key], int):
            raise ValueError(f"{key} {out[key]!r}")
    if not out["profiles"]:
        raise ValueError("no profiles")
    return out


def engine_file_name(
    *,
    architecture: str,
    scale: int,
    model_sha256: str,
    onnx_sha256: str,
    precision: str,
    profiles: tuple[ShapeProfile, ...],
    batch: int,
    builder: str,
    builder_version: str,
    device_tag: str,
) -> str:
    """E.g. ``compact-x4-3f9a1b2c4d5e-onnx7a8b9c0d-fp16-720p+1080p-b1-trt10.13.0.35-nvidia-h200-sm90.engine``.

    ``device_tag``: the GPU (`GpuInfo.tag`) for TensorRT, the target list for TensorRT-RTX.
    """
    parts = [
        f"{architecture}-x{scale}",
        model_sha256[:12],
        f"onnx{onnx_sha256[:8]}",
        precision,
        profile_tag(profiles),
        f"b{batch}",
        builder_tag(builder, builder_version),
        device_tag,
    ]
    return "-".join(parts) + ENGINE_SUFFIX


def rtx_device_tag(targets: tuple[str, ...]) -> str:
    return "-".join("sm" + cc.replace(".", "") for cc in targets) if targets else "smdefault"


def manifest_path(engine: Path) -> Path:
    return engine.with_suffix(_MANIFEST_SUFFIX)


def write_manifest(manifest: EngineManifest, folder: Path) -> Path:
    return write_atomically(manifest.to_json().encode(), manifest_path(folder / manifest.engine_file))


def read_manifest(path: Path) -> EngineManifest:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineError(f"cannot read the engine manifest {path} ({exc})") from exc
    return EngineManifest.from_json(text, source=str(path))


def rebuild_command(
    manifest: EngineManifest,
    folder: Path,
    *,
    extra_profile: str | None = None,
    batch: int | None = None,
    add_target: str | None = None,
) -> str:
    """The `vsr build-engine` command that builds this engine again here (shell-quoted).

    ``extra_profile`` adds a profile and ``batch`` raises the batch (for an input no profile
    covers); ``add_target`` adds this GPU's compute capability to a TensorRT-RTX engine's targets.
    """
    args = ["vsr", "build-engine", manifest.model_source, "--precision", manifest.precision]
    for spec in (*manifest.profile_specs, *([extra_profile] if extra_profile else [])):
        args += ["--profile", spec]
    args += [
        "--batch",
        str(max(manifest.batch, batch or 0)),
        "--target",
        manifest.builder,
        "--out",
        str(folder),
    ]
    if manifest.builder == "tensorrt-rtx":
        targets = set(manifest.target_compute_capabilities)
        if add_target is not None:
            targets |= {add_target, *(() if targets else RTX_DEFAULT_TARGETS)}
        if targets:
            ordered = sorted(targets, key=lambda cc: tuple(int(v) for v in cc.split(".")))
            args += ["--compute-capability", ",".join(ordered)]
    return shlex.join(args)
