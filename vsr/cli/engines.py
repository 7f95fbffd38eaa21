"""`vsr engines [DIR]`: the engine cache, one line per engine, each checked against this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsr.cli.errors import reports_errors
from vsr.engines import EngineCheck, list_engines
from vsr.engines.targets import display_name
from vsr.errors import InputError

__all__ = ["engines_command", "format_check"]


def format_check(check: EngineCheck) -> str:
    """``file  model  precision  profiles  builder  status: why``."""
    m = check.manifest
    if m is None:
        return f"{check.engine.name}  ?  ?  ?  ?  {check.status}: {check.reason}"
    profiles = "+".join(p.label for p in m.profiles)
    return (
        f"{check.engine.name}  {m.model_name} ({m.architecture} x{m.scale})  {m.precision}  {profiles} b{m.batch}  "
        f"{display_name(m.builder)} {m.builder_version}  {check.status}: {check.reason}"
    )


@reports_errors
def engines_command(
    folder: Annotated[str, typer.Argument(help="Engine cache folder.")] = "engines",
    rebuild: Annotated[
        bool,
        typer.Option("--rebuild", help="After each unusable engine, print the command that rebuilds it."),
    ] = False,
) -> None:
    """List the engines in FOLDER and say whether each can run here (valid), and if not, why."""
    path = Path(folder)
    if not path.is_dir():
        raise InputError(
            f"engine folder {folder} does not exist; build an engine into it with vsr build-engine"
        )
    checks = list_engines(path)
    if not checks:
        typer.echo(f"no engines in {folder}", err=True)
    for check in checks:
        typer.echo(format_check(check))
        if rebuild and not check.valid and check.status != "unchecked" and check.rebuild:
            typer.echo(f"  rebuild: {check.rebuild}")
