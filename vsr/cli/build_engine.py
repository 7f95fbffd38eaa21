"""`vsr build-engine MODEL`: a TensorRT or TensorRT-RTX engine in the engine cache, with its manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsr.cli.errors import reports_errors
from vsr.engines import EngineBuildRequest, EngineManifest, build_engine
from vsr.engines.targets import BUILDERS, display_name, parse_compute_capabilities
from vsr.errors import ConfigError
from vsr.models.classic import CLASSIC_KERNELS

__all__ = ["build_engine_command"]

Opt = typer.Option


def _summary(path: Path, reused: bool, m: EngineManifest) -> str:
    profiles = ", ".join(p.describe() for p in m.profiles)
    what = (
        f"{m.architecture} x{m.scale} {m.precision}, {display_name(m.builder)} {m.builder_version} "
        f"for {m.devices}, profiles {profiles}"
    )
    if reused:
        return f"up to date: {path} ({what})"
    parity = (
        f"parity {m.parity_psnr_db:.2f} dB" if m.parity_psnr_db is not None else f"parity {m.parity_note}"
    )
    return f"built {path} ({m.engine_bytes / 1e6:.1f} MB) in {m.build_seconds:.1f} s: {what}; {parity}"


@reports_errors
def build_engine_command(
    model: Annotated[
        str, typer.Argument(help="Checkpoint (.pth, .safetensors) or model name.", show_default=False)
    ],
    precision: Annotated[str, Opt(help="fp16 or fp32.")] = "fp16",
    profile: Annotated[
        list[str] | None,
        Opt(
            "--profile",
            help="Input sizes: 480p,720p,1080p (one fixed-size profile each), WxH, or "
            "min:WxH,opt:WxH,max:WxH; repeat for more profiles in the same engine. [default: 1080p]",
            show_default=False,
        ),
    ] = None,
    batch: Annotated[int, Opt(help="Largest batch the engine runs (profiles take 1 to N).")] = 1,
    target: Annotated[
        str, Opt(help="tensorrt (this GPU) or tensorrt-rtx (ahead of time, no GPU needed).")
    ] = "tensorrt",
    out: Annotated[str, Opt("--out", help="Engine cache folder.")] = "engines",
    compute_capability: Annotated[
        str | None,
        Opt(
            "--compute-capability",
            help="tensorrt-rtx targets, e.g. 8.6,8.9,12.0. [default: TensorRT-RTX's, 8.0,8.6,8.9,12.0]",
            show_default=False,
        ),
    ] = None,
    opt_level: Annotated[int, Opt("--opt-level", help="Builder optimization level, 0 to 5.")] = 3,
    force: Annotated[bool, Opt("--force", help="Rebuild even if an up-to-date engine is there.")] = False,
) -> None:
    """Build an engine for MODEL: named by its identity, written complete or not at all, with a JSON manifest."""
    from vsr.models import load_model

    if model in CLASSIC_KERNELS:
        raise ConfigError(
            f"{model} is a classic resizer with no network: there is no engine to build for it; "
            "give a trained model (a built-in name or a checkpoint)"
        )
    if target not in BUILDERS:
        raise ConfigError(f"--target must be {' or '.join(BUILDERS)}, got {target!r}")
    if precision not in ("fp16", "fp32"):
        raise ConfigError(f"--precision must be fp16 or fp32, got {precision!r}")
    targets = parse_compute_capabilities(compute_capability) if compute_capability is not None else ()
    if Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out} is a file; give the engine cache folder")
    request = EngineBuildRequest(
        model_source=model,
        precision=precision,  # type: ignore[arg-type]
        profiles=tuple(profile) if profile else ("1080p",),
        batch=batch,
        target=target,  # type: ignore[arg-type]
        compute_capabilities=targets,
        out_dir=Path(out),
        optimization_level=opt_level,
        force=force,
    )
    built = build_engine(load_model(model), request)
    typer.echo(_summary(built.path, built.reused, built.manifest))
