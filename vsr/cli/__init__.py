"""The `vsr` command line: a thin typer app, one module per command."""

from __future__ import annotations

from typing import Annotated

import typer

from vsr import __version__
from vsr.cli.allocator import tune_malloc
from vsr.cli.bench import bench_command
from vsr.cli.build_engine import build_engine_command
from vsr.cli.engines import engines_command
from vsr.cli.errors import set_debug
from vsr.cli.eval import eval_command
from vsr.cli.models import models_command
from vsr.cli.probe import probe
from vsr.cli.train import train_command
from vsr.cli.upscale import upscale
from vsr.cli.watch import watch_command

__all__ = ["app", "main"]

app = typer.Typer(
    name="vsr",
    help="Streaming video super-resolution: every frame, exact timestamps, audio untouched.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: "[default: ...]" in option help is text, not markup
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vsr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    set_debug(debug)


app.command("upscale")(upscale)
app.command("probe")(probe)
app.command("eval")(eval_command)
app.command("train")(train_command)
app.command("bench")(bench_command)
app.command("build-engine")(build_engine_command)
app.command("engines")(engines_command)
app.command("models")(models_command)
app.command("watch")(watch_command)


def main() -> None:
    tune_malloc()
    app(prog_name="vsr")
