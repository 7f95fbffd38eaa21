"""The Restore stage alone: batching and tiling change nothing; the final resize and crop."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from vsr.backends import BackendOptions, create_backend
from vsr.media import ColorDescription, Frame
from vsr.media.color import ColorMatrix, ColorRange
from vsr.models import load_model
from vsr.pipeline.restore import RestoreConfig, RestoreStage

BT709 = ColorDescription(matrix=ColorMatrix.BT709, range=ColorRange.LIMITED, primaries=1, transfer=1)


def _frames(n: int, width: int, height: int) -> list[Frame]:
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(n):
        y = (60 + 80 * np.sin(xx / 7.0 + i) * np.cos(yy / 5.0) + rng.normal(0, 6, (height, width))).clip(
            16, 235
        )
        u = np.full(((height + 1) // 2, (width + 1) // 2), 100 + 10 * i, np.uint8)
        v = np.full_like(u, 150)
        frames.append(
            Frame(index=i, pts=i * 3, time_base=Fraction(1, 30), pix_fmt="yuv420p", width=width, height=height,
                  planes=(y.astype(np.uint8), u, v), color=BT709)
        )  # fmt: skip
    return frames


def _stage(
    model_name: str | Path, size: tuple[int, int], out: tuple[int, int], **config: int
) -> RestoreStage:
    model = (
        load_model(model_name, scale=2) if model_name in ("bicubic", "lanczos") else load_model(model_name)
    )
    backend = create_backend("torch", model, BackendOptions(device=torch.device("cpu"), precision="fp32"))
    cfg = RestoreConfig(input_size=size, input_pix_fmt="yuv420p", input_color=BT709, output_size=out,
                        output_pix_fmt="yuv420p", output_color=BT709, **config)  # fmt: skip
    return RestoreStage(backend, model.descriptor, cfg)


def _max_diff(a: list[Frame], b: list[Frame]) -> int:
    return max(int(np.abs(p.astype(int) - q.astype(int)).max()) for fa, fb in zip(a, b, strict=True)
               for p, q in zip(fa.planes, fb.planes, strict=True))  # fmt: skip


def test_batching_and_tiling_give_the_same_frames(shared_data: Path) -> None:
    weights = shared_data / "weights" / "realesr-animevideov3.pth"
    size, out = (70, 45), (280, 180)
    frames = _frames(3, *size)
    one = _stage(weights, size, out)
    reference = [f for frame in frames for f in one([frame])]
    assert [f.pts for f in reference] == [0, 3, 6] and reference[0].planes[0].shape == (180, 280)
    assert _max_diff(_stage(weights, size, out)(frames), reference) <= 1
    tiled = _stage(weights, size, out, tile=32, tile_overlap=17)(frames)
    assert _max_diff(tiled, reference) <= 1
    # with too little context the seams show: proof the comparison can fail
    assert _max_diff(_stage(weights, size, out, tile=32, tile_overlap=2)(frames), reference) > 2


def test_odd_output_is_cropped_and_other_sizes_resized() -> None:
    frames = _frames(1, 41, 31)
    cropped = _stage("bicubic", (41, 31), (82, 62))(frames)[0]
    assert cropped.planes[0].shape == (62, 82) and cropped.planes[1].shape == (31, 41)
    resized = _stage("bicubic", (41, 31), (100, 50))(frames)[0]
    assert (resized.width, resized.height) == (100, 50) and resized.planes[0].shape == (50, 100)


def test_a_mid_stream_size_change_is_refused_with_a_clear_message() -> None:
    stage = _stage("bicubic", (40, 30), (80, 60))
    with pytest.raises(Exception, match=r"frame 0 changed to 42x30 yuv420p mid-stream"):
        stage(_frames(1, 42, 30))
