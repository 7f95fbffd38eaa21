"""The synthetic input of `vsr bench --synthetic`: moving YUV frames written to a temporary clip.

The clip is real H.264 (x264 ultrafast, no B-frames) so that the decode stage measures a real
decoder, as it would on a user's file; the content moves and carries noise so that the encoder
works on motion and detail instead of coasting on a static picture.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vsr.errors import ConfigError

__all__ = ["SYNTHETIC_SIZES", "parse_synthetic", "write_synthetic_clip"]

SYNTHETIC_SIZES = {"2160p": (3840, 2160), "1080p": (1920, 1080), "720p": (1280, 720), "480p": (854, 480)}


def parse_synthetic(text: str) -> tuple[int, int]:
    """'1080p' or '640x360' -> (width, height); even sizes, since the clip is 4:2:0."""
    named = SYNTHETIC_SIZES.get(text.strip().lower())
    if named is not None:
        return named
    try:
        width, height = (int(p) for p in text.lower().split("x"))
    except ValueError:
        raise ConfigError(
            f"--synthetic must be {', '.join(SYNTHETIC_SIZES)} or WxH (e.g. 640x360), got {text!r}"
        ) from None
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ConfigError(f"--synthetic needs even sizes of at least 16x16, got {text!r}")
    return width, height


def _yuv420_frame(width: int, height: int, index: int, texture: np.ndarray) -> np.ndarray:
    """Frame ``index`` as one (h * 3/2, w) uint8 array: a gradient drifting right over fixed noise."""
    x = np.arange(width, dtype=np.float32)[None, :]
    y = np.arange(height, dtype=np.float32)[:, None]
    luma = 60 + 120 * ((x + 4 * index) % width) / width + 40 * y / height + texture
    cw, ch = width // 2, height // 2
    u = 128 + 50 * np.sin((np.arange(cw, dtype=np.float32)[None, :] + 3 * index) / 9.0) + 0 * y[:ch]
    v = 128 + 50 * np.cos((np.arange(ch, dtype=np.float32)[:, None] - 2 * index) / 7.0) + 0 * x[:, :cw]
    chroma = np.concatenate([u.reshape(-1), v.reshape(-1)]).reshape(height // 2, width)
    return np.clip(np.concatenate([luma, chroma]), 16, 235).astype(np.uint8)


def write_synthetic_clip(path: Path, width: int, height: int, frames: int, *, seed: int = 0) -> Path:
    """Write ``frames`` moving yuv420p frames at 25 fps to ``path`` (.mp4) and return it."""
    texture = np.random.default_rng(seed).normal(0, 12, size=(height, width)).astype(np.float32)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(
            "libx264", rate=Fraction(25), options={"preset": "ultrafast", "bframes": "0"}
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 25)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(_yuv420_frame(width, height, index, texture), format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
