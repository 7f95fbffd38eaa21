"""`evaluate_clip`: the image protocol on a video's frames (each frame is a ground truth).

Every decoded frame is turned into uint8 RGB with the frame's own matrix and range (untagged ones
resolved the way players guess, as the upscale pipeline does) by the pipeline's own colour maths,
then scored exactly as `evaluate_folder` scores an image: modcrop, MATLAB-bicubic LR, restore,
PSNR-Y/SSIM-Y/PSNR-RGB with the border shaved. Rows of the report are frames.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from vsr.errors import ConfigError, InputError
from vsr.media import FileSource, Frame, pixel_layout
from vsr.ops.color import planes_to_rgb
from vsr.pipeline.restore import sample_format
from vsr.quality.evaluate import _SSIM_WINDOW, BICUBIC, _upscaler
from vsr.quality.protocol import degrade, modcrop, score, to_uint8
from vsr.quality.report import EvalReport, ImageResult

__all__ = ["clip_frames", "evaluate_clip", "frame_to_rgb"]

log = logging.getLogger(__name__)


def frame_to_rgb(frame: Frame) -> NDArray[np.uint8]:
    """A decoded `Frame` as uint8 ``H x W x 3`` RGB, converted with its own colour description."""
    color = frame.color.resolved(frame.height, full_range_format=pixel_layout(frame.pix_fmt).full_range)
    planes = tuple(torch.from_numpy(np.ascontiguousarray(p))[None] for p in frame.planes)
    rgb = planes_to_rgb(planes, sample_format(frame.pix_fmt, color), dtype=torch.float64)
    return to_uint8(rgb[0].permute(1, 2, 0).numpy() * 255.0)


def clip_frames(
    path: str | os.PathLike[str], frames: int | None = None
) -> Iterator[tuple[int, NDArray[np.uint8]]]:
    """(index, RGB) of the first ``frames`` frames of a video (all of them with None), in order."""
    if frames is not None and frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {frames}")
    # "off": the ground truth is the frames as stored; a deinterlacer's guess is not ground truth.
    with FileSource(path, deinterlace="off") as source:
        count = 0
        for item in source.items():
            if not isinstance(item, Frame):
                continue  # audio and subtitle packets
            yield item.index, frame_to_rgb(item)
            count += 1
            if frames is not None and count >= frames:
                return


def evaluate_clip(
    path: str | os.PathLike[str],
    model: str = BICUBIC,
    *,
    scale: int | None = None,
    frames: int | None = None,
    device: str = "auto",
    precision: str = "fp32",
) -> EvalReport:
    """Score ``model`` on the first ``frames`` frames of a video (all with None), one row a frame.

    ``model``, ``scale``, ``device`` and ``precision`` mean what they mean for `evaluate_folder`.
    """
    p = Path(path)
    upscale, model_name, scale = _upscaler(model, scale, device, precision)
    rows = []
    for index, rgb in clip_frames(p, frames):
        hr = modcrop(rgb, scale)
        h, w = hr.shape[:2]
        if min(h, w) < 2 * scale + _SSIM_WINDOW:
            raise InputError(
                f"frames of {p.name} are {w}x{h}, too small to score at x{scale}: "
                f"needs {2 * scale + _SSIM_WINDOW} pixels a side after the {scale}-pixel border is cut"
            )
        scores = score(upscale(degrade(hr, scale)), hr, scale=scale)
        rows.append(
            ImageResult(
                name=f"frame {index}",
                width=w,
                height=h,
                psnr_y=scores.psnr_y,
                ssim_y=scores.ssim_y,
                psnr_rgb=scores.psnr_rgb,
            )
        )
        log.debug("frame %d: PSNR-Y %.2f dB, SSIM-Y %.4f", index, scores.psnr_y, scores.ssim_y)
    if not rows:
        raise InputError(f"{p} has no decodable video frames; nothing to score")
    return EvalReport(folder=str(path), model=model_name, scale=scale, rows=tuple(rows), unit="frame")
