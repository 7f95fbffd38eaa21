"""`vsr probe FILE`: what is in the file, and what `vsr upscale` would do with it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vsr.cli.errors import reports_errors
from vsr.media.probe import probe as probe_media
from vsr.pipeline.image_plan import describe_image
from vsr.pipeline.images import is_image_input
from vsr.pipeline.options import load_options
from vsr.pipeline.plan import make_plan

__all__ = ["probe"]

Opt = typer.Option


@reports_errors
def probe(
    input: Annotated[str, typer.Argument(help="Media file to inspect.", show_default=False)],
    model: Annotated[str | None, Opt("--model", "-m", help="Model to plan with. [default: auto]")] = None,
    scale: Annotated[int | None, Opt("--scale", "-s", help="Output scale.")] = None,
    size: Annotated[str | None, Opt("--size", help="Exact output size WxH.")] = None,
    device: Annotated[str | None, Opt(help="auto, cpu, cuda or cuda:N.")] = None,
    precision: Annotated[str | None, Opt(help="auto, fp32, fp16 or bf16.")] = None,
    codec: Annotated[str | None, Opt(help="Encoder to plan with.")] = None,
    pix_fmt: Annotated[str | None, Opt("--pix-fmt", help="Output pixel format.")] = None,
) -> None:
    """Print the streams, sizes and colour of FILE and the model, backend, precision and encoder a run would use."""
    # as `vsr upscale` would take it towards a video output: an animated PNG is a video
    if is_image_input(input, output="probe.mp4") and not Path(input).is_dir():
        options = load_options(None, model=model, scale=scale, size=size, device=device, precision=precision)
        for line in describe_image(input, options):
            typer.echo(line)
        return
    info = probe_media(input)
    for line in info.describe():
        typer.echo(line)
    options = load_options(
        None,
        model=model,
        scale=scale,
        size=size,
        device=device,
        precision=precision,
        codec=codec,
        pix_fmt=pix_fmt,
    )
    plan = make_plan(info.video, options)
    typer.echo("plan:")
    for line in plan.describe():
        typer.echo("  " + line)
