"""`vsr watch CAMERAS.toml`: several cameras (or files) through one model, each to its own output."""

from __future__ import annotations

from typing import Annotated

import typer

from vsr.cli.errors import reports_errors, say_error
from vsr.cli.reports import check_report_path, write_json
from vsr.cli.upscale import stop_on_signals
from vsr.pipeline.watch import WatchRun
from vsr.pipeline.watch_config import load_watch_config
from vsr.pipeline.watch_report import FeedReport, WatchSummary
from vsr.text import counted

__all__ = ["format_watch_summary", "watch_command"]

Opt = typer.Option

EXIT_FEED_FAILED = 1  # a feed failed (input unreadable, output unwritable), or the shared model did
EXIT_CAMERA_MISSING = 3  # no feed failed, but a camera gave up or never came up
EXIT_INTERRUPTED = 130  # Ctrl-C/SIGTERM, every camera recorded until then


def _feed_lines(f: FeedReport) -> list[str]:
    if f.input_size is None or f.output_size is None:
        lines = [f"camera {f.name}: nothing written; ended: {f.ended_by}"]  # it never came up
    else:
        (iw, ih), (ow, oh) = f.input_size, f.output_size
        lines = [
            f"camera {f.name}: {f.frames_out} of {f.frames_in} frames written ({iw}x{ih} -> {ow}x{oh}) "
            f"to {f.output if f.output is not None else 'nothing'}; ended: {f.ended_by}"
        ]
    if f.segments:
        lines.append(
            f"  {counted(len(f.segments), 'segment')}: {f.segments[0]}"
            + (f" ... {f.segments[-1]}" if len(f.segments) > 1 else "")
        )
    if f.live:
        lat = f.latency
        lines.append(
            f"  {f.connections} connections, {f.disconnects} disconnects, {f.reconnects} reconnects, "
            f"{f.reconnect_failures} failed attempts; {f.frames_dropped} frames dropped; {lat.describe()}"
        )
    lines += [f"  note: {n}" for n in f.notes]
    return lines


def format_watch_summary(s: WatchSummary) -> str:
    lines = [
        f"{counted(len(s.feeds), 'feed')} in {s.wall_s:.2f} s: model {s.model} on {s.backend}/{s.device} {s.precision}, "
        f"{s.frames_restored} frames in {s.model_calls} model calls (batch {s.batch}), "
        f"{s.cross_feed_calls} of them with frames of more than one feed",
    ]
    for feed in s.feeds:
        lines += _feed_lines(feed)
    lines += [f"note: {n}" for n in s.notes]
    return "\n".join(lines)


@reports_errors
def watch_command(
    config: Annotated[
        str,
        typer.Argument(
            help="The cameras TOML: the model settings and one [[camera]] per feed "
            "(see configs/cameras.example.toml).",
            show_default=False,
        ),
    ],
    overwrite: Annotated[bool, Opt("--overwrite", "-y", help="Replace outputs that exist.")] = False,
    json_path: Annotated[
        str | None, Opt("--json", help="Write the run summary as JSON to this file ('-' for stdout).")
    ] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No plan or summary.")] = False,
) -> None:
    """Run every camera of CONFIG through one model on one device, batching frames across cameras.

    Each camera connects and reconnects on its own policy and writes its own output; one that is
    down at the start is retried while the others record, and joins when it comes up. One that
    gives up, or fails, ends its own output and the others go on. The run ends when every feed
    has ended, or on Ctrl-C/SIGTERM: every output is then finished normally; a second Ctrl-C
    stops at once, keeping the partial files. Still-frame reuse, temporal smoothing and denoise
    are per camera (reuse_still, temporal, temporal_strength, denoise, denoiser), each camera with
    its own state.

    Exit codes: 0 every feed ran to its end; 1 a feed failed (one error line per failed feed);
    2 a config error (nothing started); 3 no feed failed, but a camera gave up (at the start:
    nothing written; or mid-run) or never came up (one error line per such camera); 130
    stopped by Ctrl-C/SIGTERM with every camera recording.
    """
    check_report_path(json_path, "--json")
    run = WatchRun(load_watch_config(config, overwrite=overwrite))
    if not quiet:
        for line in run.describe():
            typer.echo(line, err=True)
    with stop_on_signals(run.cancel):
        summary = run.run()
    if json_path is not None:
        write_json(json_path, summary.to_dict())
    if not quiet:
        typer.echo(format_watch_summary(summary), err=True)
    failed, missing = summary.failed, summary.missing
    for feed in failed:
        say_error(f"camera {feed.name!r}: {feed.error}")
    for feed in missing:
        say_error(f"camera {feed.name!r}: {feed.ended_by}")
    if failed:
        raise typer.Exit(EXIT_FEED_FAILED)
    if missing:
        raise typer.Exit(EXIT_CAMERA_MISSING)
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)  # every output is complete, but the run was stopped
