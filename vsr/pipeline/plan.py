"""From options and a probed input to the decisions a run makes: what `vsr probe` prints.

Every choice the pipeline makes on the user's behalf (model, device, precision, output size, pixel
format, colour tags) is made here, once, and each one that deviates from what was asked is
written down as a note the CLI shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vsr.backends import BackendOptions, create_backend, resolve_device, resolve_precision
from vsr.backends.compiled import auto_compile, cxx_compiler
from vsr.backends.selection import (
    ENGINE_DIR,
    BackendChoice,
    CachedEngine,
    ModelIdentity,
    backend_names,
    detect_device_facts,
    model_input_shapes,
    scan_engine_cache,
    select_backend,
)
from vsr.engines.profiles import Shape
from vsr.engines.targets import BUILDERS, Builder
from vsr.errors import ConfigError
from vsr.media import (
    VideoInfo,
    VideoOutputSpec,
    choose_output_pix_fmt,
    pixel_layout,
    spec_for_input,
)
from vsr.models import LoadedModel, load_model
from vsr.models.builtin import default_builtin
from vsr.models.descriptor import ModelDescriptor, Precision
from vsr.pipeline.denoise_pass import check_denoiser, denoiser_to_load
from vsr.pipeline.options import UpscaleOptions, unused_options
from vsr.pipeline.restore import RestoreConfig, RestoreStage
from vsr.pipeline.temporal import flow_for

__all__ = [
    "RunPlan",
    "choose_backend",
    "make_plan",
    "output_size",
    "resolve_model",
    "wanted_scale",
]

CLASSIC_MODELS = ("bicubic", "lanczos")


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    model: LoadedModel
    backend: str
    device: torch.device
    precision: Precision
    batch: int
    restore: RestoreConfig
    output: VideoOutputSpec
    notes: tuple[str, ...] = field(default_factory=tuple)
    denoiser: LoadedModel | None = None  # the --denoise pre-pass's model
    engine: Path | None = None  # the engine the tensorrt(-rtx) backend runs
    backend_reason: str = ""  # why this backend: "auto: ... -> torch on cpu"
    cuda_graph: bool = False  # torch on CUDA: CUDA graph replay per input shape
    compile: bool = False  # torch: frozen torch.compile builds (the model, and the denoiser)

    def backend_options(self) -> BackendOptions:
        """What `create_backend` needs to make the backend this plan chose."""
        return BackendOptions(
            device=self.device,
            precision=self.precision,
            channels_last=True,
            engine=self.engine,
            cuda_graph=self.cuda_graph,
            compile=self.compile,
        )

    def restore_stage(self) -> RestoreStage:
        """The backend this plan chose, and the Restore stage around it."""
        backend = create_backend(self.backend, self.model, self.backend_options())
        return RestoreStage(
            backend,
            self.model.descriptor,
            self.restore,
            denoiser=self.denoiser,
            compile_denoiser=self.compile,
        )

    def describe(self) -> list[str]:
        r, d = self.restore, self.model.descriptor
        (iw, ih), (ow, oh) = r.input_size, r.output_size
        lines = [
            f"model:     {d.summary()}",
            f"backend:   {self.backend} on {self.device} ({self.precision}), batch {self.batch}"
            + (", CUDA graphs" if self.cuda_graph else "")
            + (", torch.compile" if self.compile else "")
            + (f", tiles of {r.tile}px with {r.tile_overlap}px overlap" if r.tile else ""),
            *([f"           {self.backend_reason}"] if self.backend_reason else []),
            f"resize:    {iw}x{ih} -> model x{d.scale} -> {ow}x{oh}",
            f"colour:    in {r.input_pix_fmt} {r.input_color.describe()}",
            f"           out {r.output_pix_fmt} {r.output_color.describe()}",
            f"encoder:   {self.output.codec} crf={'default' if self.output.crf is None else self.output.crf} "
            f"preset={self.output.preset or 'default'}"
            + (f", {n} instances on GOP-aligned chunks" if (n := self.output.encoder_instances) > 1 else ""),
        ]
        lines += _restore_step_lines(r, self.denoiser)
        lines += [f"note:      {n}" for n in self.notes]
        return lines


_FLOW_NAMES = {
    "auto": "motion from the input frames: DIS on a CPU, torch Lucas-Kanade on a GPU",
    "dis": "OpenCV DIS flow on the input frames",
    "torch": "torch Lucas-Kanade flow on the input frames",
}


def _restore_step_lines(r: RestoreConfig, denoiser: LoadedModel | None) -> list[str]:
    lines = []
    if denoiser is not None and r.denoise is not None:
        level = "sigma estimated per scene" if r.denoise == "auto" else f"sigma {r.denoise:g}"
        frames = ", motion-compensated average of the frames before" if r.denoise_temporal else ""
        lines.append(f"denoise:   {denoiser.descriptor.summary()}, {level}{frames}")
    if r.temporal:
        lines.append(f"temporal:  on, strength {r.temporal_strength:g} ({_FLOW_NAMES[r.temporal_flow]})")
    if r.reuse_still:
        regions = (
            ", changed regions alone where cheaper" if r.reuse_regions and not (r.temporal or r.tile) else ""
        )
        lines.append(f"reuse:     still frames reuse the previous output{regions}")
    return lines


def resolve_model(name: str, scale: int | None, device_type: str = "cpu") -> tuple[LoadedModel, list[str]]:
    """Load the model the options name; ``auto`` is the built-in SR model for the scale and device."""
    notes: list[str] = []
    if name == "auto":
        wanted = scale or 2
        weights = default_builtin(wanted, device_type)
        if weights is None:
            # Nothing trained ships in this install: the classical Lanczos resizer is the
            # model-free fallback. Say so, so nobody mistakes it for super-resolution.
            notes.append(
                "no trained built-in model is installed: using lanczos; pass --model CHECKPOINT for SR"
            )
            return load_model("lanczos", scale=wanted), notes
        return load_model(weights.name), notes
    if name in CLASSIC_MODELS:
        return load_model(name, scale=scale or 2), notes
    return load_model(name), notes


def wanted_scale(input_size: tuple[int, int], options: UpscaleOptions) -> int | None:
    """The scale ``auto`` should pick a model for: ``--scale``, or what ``--size`` needs."""
    if options.scale is not None or options.size is None:
        return options.scale
    (in_w, in_h), (width, height) = input_size, options.size
    ratio = max(width / in_w if width > 0 else 0.0, height / in_h if height > 0 else 0.0)
    return max(1, math.ceil(ratio - 1e-9))


def output_size(
    input_size: tuple[int, int], model_scale: int, options: UpscaleOptions, chroma_w: int, chroma_h: int
) -> tuple[tuple[int, int], list[str]]:
    """The output (width, height) for an input size, and notes on what deviates from the request.

    A size made odd for chroma-subsampled output (``chroma_w``/``chroma_h`` shifts) loses its last
    column or row."""
    notes: list[str] = []
    in_w, in_h = input_size
    if options.size is not None:
        width, height = options.size
        if width == -1:
            width = round(height * in_w / in_h)
        if height == -1:
            height = round(width * in_h / in_w)
    else:
        scale = options.scale or model_scale
        width, height = in_w * scale, in_h * scale
        if scale != model_scale:
            notes.append(f"the model is x{model_scale}: its output is resized to x{scale}")
    even_w, even_h = width - (width % 2 if chroma_w else 0), height - (height % 2 if chroma_h else 0)
    if even_w < 1 or even_h < 1:
        smallest = f"{1 + (chroma_w > 0)}x{1 + (chroma_h > 0)}"
        raise ConfigError(
            f"the output would be {width}x{height}"
            + (
                f", {even_w}x{even_h} with even sides for chroma-subsampled video"
                if (even_w, even_h) != (width, height)
                else ""
            )
            + f"; ask for at least {smallest}"
        )
    if (even_w, even_h) != (width, height):
        notes.append(f"{width}x{height} is odd for chroma-subsampled output: writing {even_w}x{even_h}")
    return (even_w, even_h), notes


def _precision_request(options: UpscaleOptions, device: torch.device, descriptor: ModelDescriptor) -> str:
    """``--precision auto`` for backends that have no bf16: fp16 on CUDA, fp32 on the CPU."""
    if options.precision != "auto" or options.backend in ("auto", "torch"):
        return options.precision
    return "fp16" if device.type == "cuda" and "fp16" in descriptor.precisions else "fp32"


def choose_backend(
    options: UpscaleOptions,
    model: LoadedModel,
    *,
    precision: Precision,
    device: torch.device,
    shapes: tuple[Shape, ...],
    engine_dir: Path = ENGINE_DIR,
) -> BackendChoice:
    """`select_backend` with this machine's engine cache and device facts.

    A TensorRT module is imported only when an engine for this model and precision is in the
    cache (or a TensorRT backend is asked for by name): a run without engines never pays for it.
    """
    from vsr.engines.onnx_export import model_fingerprint

    requested = options.backend
    d = model.descriptor
    if requested in ("torch", "onnxruntime"):
        identity = ModelIdentity(source=d.name, sha256="", scale=d.scale, in_channels=d.in_channels)
        engines: tuple[CachedEngine, ...] = ()
        builders: list[Builder] = []
    else:
        source = options.model if options.model != "auto" else d.name
        identity = ModelIdentity(
            source=source, sha256=model_fingerprint(model), scale=d.scale, in_channels=d.in_channels
        )
        engines = scan_engine_cache(engine_dir)
        if requested == "auto":
            builders = sorted(
                {
                    e.manifest.builder
                    for e in engines
                    if (e.manifest.model_sha256, e.manifest.precision) == (identity.sha256, precision)
                }
            )
        else:
            builders = [b for b in BUILDERS if b == requested]
        if device.type != "cuda":
            builders = []  # engines run on CUDA only: nothing to import
    return select_backend(
        requested,
        model=identity,
        precision=precision,
        shapes=shapes,
        engines=engines,
        folder=engine_dir,
        device=device,
        facts=detect_device_facts(device, builders),
    )


def make_plan(
    info: VideoInfo,
    options: UpscaleOptions,
    model: LoadedModel | None = None,
    *,
    engine_dir: Path = ENGINE_DIR,
) -> RunPlan:
    """The run's decisions; ``engine_dir`` is the engine cache ``--backend auto`` looks in."""
    notes: list[str] = list(info.notes)
    if options.backend not in backend_names():
        raise ConfigError(f"unknown backend {options.backend!r}; choose one of: {', '.join(backend_names())}")
    device = resolve_device(options.device)
    if model is None:
        model, model_notes = resolve_model(
            options.model, wanted_scale((info.width, info.height), options), device.type
        )
        notes += model_notes
    descriptor = model.descriptor
    precision = resolve_precision(_precision_request(options, device, descriptor), device, descriptor)

    out_pix_fmt, _ = choose_output_pix_fmt(options.codec, info.pix_fmt, options.pix_fmt)
    layout = pixel_layout(out_pix_fmt)
    out_size, size_notes = output_size(
        (info.width, info.height), descriptor.scale, options, layout.chroma_w, layout.chroma_h
    )
    output, pix_note = spec_for_input(
        info,
        width=out_size[0],
        height=out_size[1],
        codec=options.codec,
        pix_fmt=options.pix_fmt,
        crf=options.crf,
        preset=options.preset,
        threads=options.encoder_threads,
        encoder_instances=options.encoder_instances,
    )
    notes += [pix_note] if pix_note else []
    notes += size_notes
    input_color = info.color.resolved(info.height, full_range_format=pixel_layout(info.pix_fmt).full_range)
    if input_color != info.color:
        notes.append(f"input colour is not fully tagged: converting and tagging as {input_color.describe()}")
    notes += unused_options(options)
    # RRDB's exact receptive field is hundreds of pixels, which would make tiles pointless; 32
    # pixels of context is the common choice of SR tools (not measured here for RRDB: no weights).
    overlap = (
        options.tile_overlap if options.tile_overlap is not None else min(descriptor.receptive_radius, 32)
    )
    restore = RestoreConfig(
        input_size=(info.width, info.height),
        input_pix_fmt=info.pix_fmt,
        input_color=input_color,
        output_size=out_size,
        output_pix_fmt=output.pix_fmt,
        output_color=output.color,
        tile=options.tile,
        tile_overlap=overlap,
        temporal=options.temporal == "on",
        temporal_strength=float(options.temporal_strength),
        temporal_flow=flow_for("auto", device),
        reuse_still=bool(options.reuse_still),  # None (the default) is resolved by the runner
        reuse_regions=options.reuse_regions,
        denoise=options.denoise_level,
        denoise_temporal=options.denoise_temporal == "on",
    )
    shapes = model_input_shapes(
        descriptor, restore.input_size, batch=options.batch, tile=restore.tile, tile_overlap=overlap
    )
    choice = choose_backend(
        options, model, precision=precision, device=device, shapes=shapes, engine_dir=engine_dir
    )
    compiled, compile_note = _compile_choice(options, choice.backend, device, info, descriptor.architecture)
    notes += [compile_note] if compile_note else []
    return RunPlan(
        model=model,
        backend=choice.backend,
        engine=choice.engine,
        backend_reason=choice.reason,
        device=device,
        precision=precision,
        batch=options.batch,
        restore=restore,
        output=output,
        notes=tuple(notes),
        denoiser=_load_denoiser(options),
        cuda_graph=_check_cuda_graph(options, choice.backend, device),
        compile=compiled,
    )


def _check_cuda_graph(options: UpscaleOptions, backend: str, device: torch.device) -> bool:
    if not options.cuda_graph:
        return False
    if backend != "torch" or device.type != "cuda":
        raise ConfigError(
            f"--cuda-graph needs the torch backend on a CUDA device; this run is {backend} on {device}"
        )
    return True


def _compile_choice(
    options: UpscaleOptions, backend: str, device: torch.device, info: VideoInfo, architecture: str
) -> tuple[bool, str]:
    """Whether the torch backend runs torch.compile builds, and a note when auto decided."""
    if options.compile is False:
        return False, ""
    if options.compile:
        if backend != "torch":
            raise ConfigError(f"--compile needs the torch backend; this run is {backend} on {device}")
        if options.cuda_graph:
            raise ConfigError("choose either --compile or --cuda-graph, not both")
        if cxx_compiler() is None and device.type == "cpu":
            raise ConfigError(
                "--compile on the CPU needs a C++ compiler (g++); install one or pass --no-compile"
            )
        return True, ""
    if backend != "torch" or options.cuda_graph:
        return False, ""
    return auto_compile(device, architecture, info.frame_count)


def _load_denoiser(options: UpscaleOptions) -> LoadedModel | None:
    if options.denoise_level is None:
        return None
    model = load_model(denoiser_to_load(options.denoiser))
    check_denoiser(model)
    return model
