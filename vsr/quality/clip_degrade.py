"""How `vsr eval` makes a clip's low-resolution input: MATLAB bicubic, then camera noise and H.264.

Each ground-truth frame is shrunk exactly as the image protocol shrinks an image
(`vsr.quality.protocol.degrade`). Optionally, as a real camera and a real link would deliver it:

1. Gaussian noise of standard deviation ``noise`` (0..255 scale) on every channel of every pixel,
   from ``numpy.random.default_rng((seed, frame index))`` (`vsr.quality.add_gaussian_noise`, the
   denoising protocol's generator), then clipped and rounded to uint8 as a sensor's output is:
   fresh noise in every frame, which is what makes a per-frame model flicker;
2. H.264 at ``h264_bitrate`` bits per second: the whole LR sequence through libx264 (PyAV,
   preset ``medium`` without macroblock-tree rate control, average-bitrate rate control at the
   clip's frame rate, one thread) and decoded back, 4:2:0 BT.601 limited range.

The input must be the same on every run for rows of different runs to be comparable. libx264's
mbtree is not: encoding the same noisy 192x144 frames ten times in one process gave two different
streams, with one thread and with CRF as with a bitrate (libx264 through PyAV 18.1), and none
with ``mbtree=0`` at 176, 192 and 352 pixels wide; mbtree is off for that reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from vsr.errors import ConfigError
from vsr.quality.denoising import add_gaussian_noise
from vsr.quality.protocol import degrade

__all__ = ["ClipDegradation", "h264_round_trip"]

MAX_NOISE = 255.0
MIN_BITRATE = 1_000  # bits per second; x264 cannot go much lower for any picture size


@dataclass(frozen=True, kw_only=True)
class ClipDegradation:
    """What is done to each frame after the bicubic shrink; the defaults do nothing more."""

    noise: float = 0.0  # Gaussian sigma, 0..255 scale
    h264_bitrate: int | None = None  # bits per second; None: no compression
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise <= MAX_NOISE:
            raise ConfigError(f"--noise must be a sigma in [0, 255] on the 0..255 scale, got {self.noise:g}")
        if self.h264_bitrate is not None and self.h264_bitrate < MIN_BITRATE:
            raise ConfigError(f"--h264 must be at least 1k bits per second, got {self.h264_bitrate}")
        if self.h264_bitrate is not None and "libx264" not in av.codecs_available:
            raise ConfigError(
                "--h264 needs libx264, and this PyAV build has none; install a PyAV wheel with it"
            )

    def describe(self, scale: int) -> str:
        parts = [f"MATLAB bicubic x1/{scale}"]
        parts += [f"Gaussian noise sigma {self.noise:g} (seed {self.seed})"] if self.noise else []
        if self.h264_bitrate is not None:
            parts.append(f"H.264 at {self.h264_bitrate / 1000:g} kbit/s (libx264 medium, mbtree off)")
        return ", ".join(parts)

    def pairs(
        self, frames: Iterable[tuple[int, NDArray[np.uint8]]], scale: int, rate: Fraction
    ) -> Iterator[tuple[int, NDArray[np.uint8], NDArray[np.uint8]]]:
        """(index, ground truth, LR) for each (index, modcropped ground truth), in order.

        ``rate`` (frames per second) is what the bitrate is spent over.
        """
        truths: deque[tuple[int, NDArray[np.uint8]]] = deque()

        def low() -> Iterator[NDArray[np.uint8]]:
            for index, hr in frames:
                truths.append((index, hr))  # held until the encoder gives its frame back
                lr = degrade(hr, scale)
                if self.noise:
                    noisy = add_gaussian_noise(lr, self.noise, index=index, seed=self.seed)
                    lr = np.floor(np.clip(noisy, 0.0, 255.0) + 0.5).astype(np.uint8)
                yield lr

        lows = low() if self.h264_bitrate is None else h264_round_trip(low(), self.h264_bitrate, rate)
        for lr in lows:
            index, hr = truths.popleft()
            yield index, hr, lr


def _encoder(
    width: int, height: int, bitrate: int, rate: Fraction
) -> av.video.codeccontext.VideoCodecContext:
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.framerate = rate
    enc.time_base = 1 / rate
    enc.bit_rate = bitrate
    enc.thread_count = 1
    enc.options = {"preset": "medium", "x264-params": "mbtree=0"}  # mbtree=0: see the module's note
    return enc  # type: ignore[return-value]


def h264_round_trip(
    frames: Iterable[NDArray[np.uint8]], bitrate: int, rate: Fraction = Fraction(25)
) -> Iterator[NDArray[np.uint8]]:
    """uint8 RGB frames through libx264 at ``bitrate`` bit/s and back, one out for each in, in order.

    Frames stream through: only the encoder's lookahead is held. Odd sides are padded by
    replicating the last row or column for 4:2:0 and cut off again.
    """
    enc = None
    dec = av.CodecContext.create("h264", "r")
    dec.thread_count = 1
    size = (0, 0)
    sent = returned = 0

    def unpack(frame: av.VideoFrame) -> NDArray[np.uint8]:
        rgb = cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
        return np.ascontiguousarray(rgb[: size[0], : size[1]])

    for rgb in frames:
        h, w = rgb.shape[:2]
        if enc is None:
            size = (h, w)
            enc = _encoder(w + w % 2, h + h % 2, bitrate, rate)
        # OpenCV's BT.601 limited-range conversion matches swscale's to a level (vsr.train.realistic)
        padded = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(cv2.cvtColor(padded, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
        vf.pts = sent
        sent += 1
        for packet in enc.encode(vf):
            for decoded in dec.decode(packet):
                returned += 1
                yield unpack(decoded)
    if enc is None:
        return
    for packet in enc.encode(None):
        for decoded in dec.decode(packet):
            returned += 1
            yield unpack(decoded)
    for decoded in dec.decode(None):
        returned += 1
        yield unpack(decoded)
    if returned != sent:
        raise RuntimeError(f"H.264 round trip gave {returned} frames for {sent}")
