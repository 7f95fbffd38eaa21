"""`vsr upscale INPUT OUTPUT`: the main job, for a video, an image or a folder of images."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from vsr.cli.errors import reports_errors
from vsr.cli.progress import ProgressPrinter, format_image_summary, format_summary
from vsr.cli.reports import check_report_path, write_json
from vsr.pipeline.images import ImageJob, UpscaledImage, is_image_input
from vsr.pipeline.options import DEFAULT_TEMPORAL_STRENGTH, UpscaleOptions, load_options
from vsr.pipeline.runner import Pipeline

__all__ = ["upscale"]

Opt = typer.Option


@contextmanager
def stop_on_signals(cancel: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM ask the run to stop cleanly instead of killing it mid-write."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        cancel()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _upscale_images(
    input: str, output: str, options: UpscaleOptions, *, json_path: str | None, quiet: bool
) -> None:
    job = ImageJob(input, output, options)
    if not quiet:
        for line in job.describe():
            typer.echo(line, err=True)

    def report(done: UpscaledImage, index: int, total: int) -> None:
        (iw, ih), (ow, oh) = done.input_size, done.output_size
        typer.echo(
            f"[{index + 1}/{total}] {Path(done.input).name} {iw}x{ih} -> {ow}x{oh} in {done.seconds:.2f} s",
            err=True,
        )

    with stop_on_signals(job.cancel):
        summary = job.run(None if quiet else report)
    if json_path is not None:
        write_json(json_path, summary.to_dict())
    if not quiet:
        typer.echo(format_image_summary(summary), err=True)


@reports_errors
def upscale(
    input: Annotated[
        str,
        typer.Argument(
            help="Input video, image (.png .jpg .bmp .tif .webp), folder of images, or a live input "
            "(rtsp://, rtmp://, http(s)://, /dev/videoN).",
            show_default=False,
        ),
    ],
    output: Annotated[
        str,
        typer.Argument(
            help="Output video (.mp4 .mkv .mov .ts), HLS playlist (.m3u8; --segment sets the segment "
            "length, default 4s), RTSP server to publish to (rtsp://host:port/path), image, or folder "
            "(for a folder input).",
            show_default=False,
        ),
    ],
    model: Annotated[
        str | None,
        Opt(
            "--model",
            "-m",
            help="Built-in name, bicubic, lanczos, or a checkpoint (.safetensors/.pth). [default: auto]",
        ),
    ] = None,
    scale: Annotated[
        int | None, Opt("--scale", "-s", help="Output scale (2, 4). [default: the model's]")
    ] = None,
    size: Annotated[
        str | None, Opt("--size", help="Exact output size WxH (one side -1 keeps the aspect).")
    ] = None,
    device: Annotated[str | None, Opt(help="auto, cpu, cuda or cuda:N. [default: auto]")] = None,
    precision: Annotated[str | None, Opt(help="auto, fp32, fp16 or bf16. [default: auto]")] = None,
    backend: Annotated[
        str | None,
        Opt(
            help="auto (a matching engine from engines/, else torch), torch, tensorrt, tensorrt-rtx "
            "or onnxruntime. [default: auto]"
        ),
    ] = None,
    cuda_graph: Annotated[
        bool | None,
        Opt(
            "--cuda-graph/--no-cuda-graph",
            help="torch on CUDA: capture each input shape as a CUDA graph and replay it. [default: off]",
        ),
    ] = None,
    compile: Annotated[
        bool | None,
        Opt(
            "--compile/--no-compile",
            help="torch: build each input shape with torch.compile (seconds once, then up to 1.6x faster "
            "on a CPU). [default: on for the CPU, for files of 300 frames or more]",
        ),
    ] = None,
    batch: Annotated[int | None, Opt(help="Frames per model call. [default: 1]")] = None,
    tile: Annotated[int | None, Opt(help="Tile size in input pixels (0: whole frames). [default: 0]")] = None,
    tile_overlap: Annotated[
        int | None, Opt(help="Tile overlap. [default: the model's receptive radius]")
    ] = None,
    temporal: Annotated[
        str | None, Opt(help="on: blend with the previous output where motion is reliable. [default: off]")
    ] = None,
    temporal_strength: Annotated[
        float | None,
        Opt(
            help=f"Weight of the previous output, 0..1, with --temporal on. [default: {DEFAULT_TEMPORAL_STRENGTH:g}]"
        ),
    ] = None,
    reuse_still: Annotated[
        bool | None,
        Opt(
            "--reuse-still/--no-reuse-still",
            help="Reuse the previous output for unchanged frames. [default: on for live inputs, off for files]",
        ),
    ] = None,
    reuse_regions: Annotated[
        bool | None,
        Opt(
            "--reuse-regions/--no-reuse-regions",
            help="With --reuse-still: run the model only on the tiles near a change, when cheaper. [default: on]",
        ),
    ] = None,
    denoise: Annotated[
        str | None, Opt(help="Denoise before SR: off, auto, or the noise sigma (0..255). [default: off]")
    ] = None,
    denoiser: Annotated[
        str | None,
        Opt(
            help="Denoiser for --denoise: a checkpoint, or the built-in denoise (better, 1.55x the cost). [default: denoise-lite]"
        ),
    ] = None,
    denoise_temporal: Annotated[
        str | None,
        Opt(
            help="With --denoise: on averages each frame with the ones before it, motion-compensated, "
            "before the denoiser; off denoises each frame alone. [default: on]"
        ),
    ] = None,
    codec: Annotated[
        str | None, Opt(help="libx264, libx265, libsvtav1, h264_nvenc, hevc_nvenc. [default: libx264]")
    ] = None,
    crf: Annotated[int | None, Opt(help="Encoder quality (lower is better).")] = None,
    preset: Annotated[
        str | None, Opt(help="Encoder preset (x264/x265 names, SVT-AV1 0-13, NVENC p1-p7).")
    ] = None,
    pix_fmt: Annotated[
        str | None, Opt("--pix-fmt", help="Output pixel format. [default: the input's, if the encoder can]")
    ] = None,
    encoders: Annotated[
        int | None,
        Opt(
            "--encoders",
            help="File outputs, libx264/libx265: encode GOP-aligned chunks on this many encoders at "
            "once (a keyframe every 2 s; for many cores at 4K). [default: 1]",
        ),
    ] = None,
    deinterlace: Annotated[str | None, Opt(help="auto (flagged frames), on or off. [default: auto]")] = None,
    config: Annotated[
        str | None, Opt(help="A TOML preset (see configs/); options given here override it.")
    ] = None,
    overwrite: Annotated[bool, Opt("--overwrite", "-y", help="Replace OUTPUT if it exists.")] = False,
    live: Annotated[
        bool | None,
        Opt(
            "--live/--no-live",
            help="Drop frames to keep latency under --max-latency. [default: on for live inputs]",
        ),
    ] = None,
    max_latency: Annotated[
        float | None, Opt(help="Live mode: seconds a frame may wait for the model. [default: 1]")
    ] = None,
    rtsp_transport: Annotated[str | None, Opt(help="RTSP transport: tcp or udp. [default: tcp]")] = None,
    open_timeout: Annotated[float | None, Opt(help="Live inputs: connect timeout, s. [default: 10]")] = None,
    read_timeout: Annotated[
        float | None, Opt(help="Live inputs: seconds without data that count as a disconnect. [default: 5]")
    ] = None,
    reconnect_attempts: Annotated[
        int | None,
        Opt(
            help="Consecutive failed reconnects before giving up; 0 never reconnects, -1 forever. [default: 10]"
        ),
    ] = None,
    reconnect_interval: Annotated[
        float | None, Opt(help="Seconds before the first reconnect; doubles, at most 30. [default: 1]")
    ] = None,
    segment: Annotated[
        str | None, Opt(help="Cut the output into files of this duration (10m, 30s, 1h), named by UTC time.")
    ] = None,
    json_path: Annotated[
        str | None, Opt("--json", help="Write the run summary as JSON to this file ('-' for stdout).")
    ] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Upscale a video (every frame, the same timestamps, audio and subtitles copied untouched),
    an image, or every image of a folder into an output folder under the same names.

    A live input runs until Ctrl-C/SIGTERM (the output is then finished normally, exit code 130) or
    until its reconnect attempts are used up; a second Ctrl-C stops at once, keeping the partial file.

    For images the encoder options (--codec, --crf, --preset, --pix-fmt, --batch, --deinterlace)
    are ignored with a note.
    """
    check_report_path(json_path, "--json")
    options = load_options(
        config,
        model=model,
        scale=scale,
        size=size,
        device=device,
        precision=precision,
        backend=backend,
        cuda_graph=cuda_graph,
        compile=compile,
        batch=batch,
        tile=tile,
        tile_overlap=tile_overlap,
        temporal=temporal,
        temporal_strength=temporal_strength,
        reuse_still=reuse_still,
        reuse_regions=reuse_regions,
        denoise=denoise,
        denoiser=denoiser,
        denoise_temporal=denoise_temporal,
        codec=codec,
        crf=crf,
        preset=preset,
        pix_fmt=pix_fmt,
        encoder_instances=encoders,
        deinterlace=deinterlace,
        overwrite=overwrite or None,
        live=live,
        max_latency=max_latency,
        rtsp_transport=rtsp_transport,
        open_timeout=open_timeout,
        read_timeout=read_timeout,
        reconnect_attempts=reconnect_attempts,
        reconnect_interval=reconnect_interval,
        segment=segment,
    )
    if is_image_input(input, output):
        _upscale_images(input, output, options, json_path=json_path, quiet=quiet)
        return
    printer = None if quiet else ProgressPrinter()
    pipeline = Pipeline(input, output, options, on_progress=printer)
    if not quiet:
        for line in pipeline.plan.describe():
            typer.echo(line, err=True)
    try:
        with stop_on_signals(pipeline.cancel):
            summary = pipeline.run()
    finally:
        if printer is not None:
            printer.finish()
    if json_path is not None:
        write_json(json_path, summary.to_dict())
    if not quiet:
        typer.echo(format_summary(summary), err=True)
    if summary.live is not None and summary.live.interrupted:
        raise typer.Exit(130)  # the recording is complete, but the run was stopped, not finished
    if summary.live is not None and summary.live.gave_up:
        # what was recorded is complete (the log said why it ended), but the camera was lost for
        # good: a supervisor must be able to tell, as from vsr watch
        raise typer.Exit(3)
