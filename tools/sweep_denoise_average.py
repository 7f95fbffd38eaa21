"""The denoise pre-pass's motion-compensated average: its settings against Y-PSNR, on one clip.

    OMP_NUM_THREADS=1 python tools/sweep_denoise_average.py [--clip ../shared/data/video/vtest.avi]
        [-m compact-x2,gan-x2] [--frames 30] [--noise 15] [--h264 300k]
        [--tolerances 4,6,8] [--averaged 8] [--downscales 2] [--presets fine-lite]

The clip's low-resolution input is made as `vsr eval` makes it (MATLAB bicubic, Gaussian noise of
``--noise``, H.264 at ``--h264`` over the clip's frame rate). The built-in pre-pass denoiser
(`DenoisePass`, bf16, ``auto`` noise level, one scene) then cleans it without the average (the
"per frame" row), and with `MotionAverage` at every (tolerance, frames, downscale) setting; each
model upscales every version (bf16, as `vsr eval --precision bf16`), scored as `vsr eval` scores a
clip: Y-PSNR with the scale cut from each border, mean over frames. Tolerances are in levels of
255; "frames" caps what the past is worth (the noise variance left is at least sigma^2 / (frames +
1)); downscale is the block size the flow is measured on, preset the DIS preset (`vsr.ops.flow`).
The defaults' row is what `--denoise auto` runs. ``--map-gains`` multiplies the noise map the
denoiser is told by each gain (1: as the average computes it), at every setting: whether telling
it more noise than the average leaves pays (an experiment; the pipeline passes the map as it is).
"""

from __future__ import annotations

import argparse
import itertools
from fractions import Fraction

import numpy as np
import torch

from vsr.backends import BackendOptions, create_backend
from vsr.cli.eval import _parse_bitrate
from vsr.media import FileSource
from vsr.models import load_model
from vsr.pipeline.denoise_pass import DenoisePass, denoiser_to_load
from vsr.pipeline.restore import restore_rgb
from vsr.pipeline.temporal import MotionAverage
from vsr.quality.clip_degrade import ClipDegradation
from vsr.quality.protocol import modcrop, score
from vsr.quality.video import clip_frames


def _u8(t: torch.Tensor) -> np.ndarray:
    return (t[0].permute(1, 2, 0).clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


class _GainedMap(MotionAverage):
    """`MotionAverage` whose noise map is multiplied by ``gain``."""

    def __init__(self, gain: float, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.gain = gain

    def __call__(
        self, frame: torch.Tensor, sigma: float, new_scene: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        average, noise_map = super().__call__(frame, sigma, new_scene)
        return average, noise_map * self.gain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="../shared/data/video/vtest.avi")
    parser.add_argument("-m", "--models", default="compact-x2,gan-x2")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--noise", type=float, default=15.0)
    parser.add_argument("--h264", default="300k")
    parser.add_argument("--tolerances", default="4,6,8", help="levels of 255")
    parser.add_argument("--averaged", default="8", help="the most frames the average stands for")
    parser.add_argument("--downscales", default="2", help="block sizes the flow is measured on")
    parser.add_argument("--presets", default="fine-lite", help="DIS presets (vsr.ops.flow)")
    parser.add_argument("--map-gains", default="1", help="factors on the noise map the denoiser is told")
    args = parser.parse_args()
    cpu = torch.device("cpu")
    models = [load_model(m) for m in args.models.split(",")]
    scales = {m.descriptor.scale for m in models}
    if len(scales) != 1:
        raise SystemExit("the models must share one scale")
    scale = scales.pop()
    with FileSource(args.clip, deinterlace="off") as source:
        rate = source.info.average_rate or Fraction(25)  # as vsr eval, for a clip that gives none
    degradation = ClipDegradation(noise=args.noise, h264_bitrate=_parse_bitrate(args.h264))
    truths = ((i, modcrop(rgb, scale)) for i, rgb in clip_frames(args.clip, args.frames))
    hrs, lrs = [], []
    for _, hr, lr in degradation.pairs(truths, scale, rate):
        hrs.append(hr)
        lrs.append(torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].float() / 255.0)
    denoiser = load_model(denoiser_to_load(None))
    settings: list[tuple[str, MotionAverage | None]] = [("off", None), ("per frame", None)]
    for tol, frames, down, preset, gain in itertools.product(
        _floats(args.tolerances),
        _floats(args.averaged),
        _floats(args.downscales),
        args.presets.split(","),
        _floats(args.map_gains),
    ):
        kwargs = dict(tolerance=tol / 255.0, frames=int(frames), downscale=int(down), preset=preset)
        average = MotionAverage(**kwargs) if gain == 1 else _GainedMap(gain, **kwargs)  # type: ignore[arg-type]
        label = f"tolerance {tol:g}, frames {int(frames)}, downscale {int(down)}, {preset}"
        if gain != 1:
            label += f", map x{gain:g}"
        settings.append((label, average))
    inputs: dict[str, list[torch.Tensor]] = {}
    sigma = 0.0
    with torch.inference_mode():
        for label, average in settings:
            if label == "off":
                inputs[label] = lrs
                continue
            # the average of this setting (None: the per-frame pass)
            stage = DenoisePass(denoiser, device=cpu, precision="bf16", sigma=None, temporal=average or False)
            inputs[label] = [stage(x, [k == 0]) for k, x in enumerate(lrs)]
            sigma = stage.estimates[0]
        h, w = hrs[0].shape[:2]
        print(
            f"{args.clip}: {len(hrs)} frames {w}x{h}, x{scale}; noise {args.noise:g} + H.264 {args.h264}; "
            f"{denoiser.descriptor.name}, sigma auto {sigma:.2f}"
        )
        print("| setting | " + " | ".join(m.descriptor.name for m in models) + " |")
        print("|---|" + "---:|" * len(models))
        for label, _ in settings:
            cells = []
            for model in models:
                backend = create_backend("torch", model, BackendOptions(device=cpu, precision="bf16"))
                psnr = [
                    score(
                        _u8(restore_rgb(backend.run, model.descriptor, x, output_size=(w, h))),
                        hr,
                        scale=scale,
                    ).psnr_y
                    for x, hr in zip(inputs[label], hrs, strict=True)
                ]
                cells.append(f"{np.mean(psnr):.2f}")
            print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
