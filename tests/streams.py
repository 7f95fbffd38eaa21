"""Synthetic frame streams and Restore stages for the tests of the stateful Restore steps.

Frames are rgb24 so that what a test builds is exactly what the stage sees (no chroma
subsampling or YUV rounding in between); textures are smooth noise, detailed enough for optical
flow, and move by whole pixels so that the truth is known.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from vsr.backends import BackendOptions, create_backend
from vsr.media import ColorDescription, Frame
from vsr.media.color import ColorMatrix, ColorRange
from vsr.models import LoadedModel, load_model
from vsr.pipeline.restore import RestoreConfig, RestoreStage

__all__ = [
    "RGB",
    "NoisyBackend",
    "decoded",
    "frames_of",
    "rgb_of",
    "stage",
    "texture",
    "translating",
    "u8",
    "write_lossless",
]

RGB = ColorDescription(matrix=ColorMatrix.BT709, range=ColorRange.FULL, primaries=1, transfer=1)


def texture(height: int, width: int, seed: int = 0, *, low: float = 40, high: float = 215) -> np.ndarray:
    """Smooth colour texture (float64 ``H x W x 3``) spanning [low, high]."""
    rng = np.random.default_rng(seed)
    smooth = cv2.GaussianBlur(rng.normal(0, 1, (height, width, 3)).astype(np.float32), (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (low + (high - low) * smooth).astype(np.float64)


def translating(
    frames: int, size: tuple[int, int], step: tuple[int, int] = (1, 0), *, seed: int = 0
) -> list[np.ndarray]:
    """``frames`` windows of ``size = (h, w)`` moving ``step = (dx, dy)`` pixels a frame over a texture."""
    h, w = size
    big = texture(h + frames * step[1] + 1, w + frames * step[0] + 1, seed)
    return [big[t * step[1] : t * step[1] + h, t * step[0] : t * step[0] + w] for t in range(frames)]


def u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def frames_of(images: list[np.ndarray], start: int = 0) -> list[Frame]:
    """uint8 ``H x W x 3`` arrays as rgb24 `Frame`s with pts 3 apart."""
    h, w = images[0].shape[:2]
    return [
        Frame(index=start + i, pts=3 * (start + i), time_base=Fraction(1, 30), pix_fmt="rgb24", width=w,
              height=h, planes=(np.ascontiguousarray(img),), color=RGB)
        for i, img in enumerate(images)
    ]  # fmt: skip


def rgb_of(frames: list[Frame]) -> list[np.ndarray]:
    return [f.planes[0] for f in frames]


class NoisyBackend:
    """Bicubic x2 plus fresh Gaussian noise on every call: a stand-in for a model that flickers.

    The noise of call n comes from seed n, so two stages fed the same frames in the same batches
    see the same noise.
    """

    def __init__(self, model: LoadedModel, sigma: float = 0.04) -> None:
        self.inner = create_backend(
            "torch", model, BackendOptions(device=torch.device("cpu"), precision="fp32")
        )
        self.name, self.device, self.precision = "noisy", torch.device("cpu"), "fp32"
        self.sigma, self.calls = sigma, 0

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.inner.run(batch)
        generator = torch.Generator().manual_seed(self.calls)
        self.calls += 1
        return out + self.sigma * torch.randn(out.shape, generator=generator)


def stage(
    size: tuple[int, int],
    *,
    model: str | Path = "bicubic",
    noisy: float = 0.0,
    denoiser: LoadedModel | None = None,
    **config: object,
) -> RestoreStage:
    """A x2 Restore stage for rgb24 frames of ``size = (width, height)``."""
    loaded = load_model(model, scale=2) if model in ("bicubic", "lanczos") else load_model(model)
    backend = (
        NoisyBackend(loaded, noisy)
        if noisy
        else create_backend("torch", loaded, BackendOptions(device=torch.device("cpu"), precision="fp32"))
    )
    cfg = RestoreConfig(input_size=size, input_pix_fmt="rgb24", input_color=RGB, output_size=(2 * size[0], 2 * size[1]),
                        output_pix_fmt="rgb24", output_color=RGB, **config)  # type: ignore[arg-type]  # fmt: skip
    return RestoreStage(backend, loaded.descriptor, cfg, denoiser=denoiser)


def write_lossless(path: Path, planes: list[tuple[np.ndarray, ...]]) -> Path:
    """yuv420p frames through lossless H.264 (qp 0): the decoder gives back exactly these planes."""
    h, w = planes[0][0].shape
    with av.open(str(path), "w") as out:
        stream = out.add_stream(
            "libx264", rate=25, options={"qp": "0", "preset": "ultrafast", "bframes": "0"}
        )
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 25)
        for i, (y, u, v) in enumerate(planes):
            frame = av.VideoFrame(w, h, "yuv420p")
            for plane, data in zip(frame.planes, (y, u, v), strict=True):
                rows = np.zeros((plane.height, plane.line_size), np.uint8)
                rows[:, : data.shape[1]] = data
                plane.update(rows.tobytes())
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def decoded(path: Path) -> list[tuple[float | None, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(f.time, f.to_ndarray()) for f in c.decode(video=0)]
