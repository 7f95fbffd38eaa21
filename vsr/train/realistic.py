"""The "realistic" degradation: blur, resize, noise, JPEG and H.264, each with random parameters.

A first-order chain in the spirit of Real-ESRGAN's, sized for video: per patch,

1. blur with an isotropic or anisotropic Gaussian (random sigma and rotation), or none;
2. resize to the LR size with a random kernel (area, bilinear, bicubic; sometimes without
   antialiasing, as cheap scalers do), sometimes through a random intermediate size first;
3. Gaussian (colour or grey) or Poisson noise, or none;
4. JPEG and/or H.264 (libx264 through PyAV, a short stream with a little motion) compression;
5. rounding to 8 bits, which is what a video decoder hands the model.

Every random choice comes from the generator passed in, and each stage draws in a fixed order, so
a batch stays a pure function of the recipe's seed and the step. Patches are degraded one at a
time because each has its own parameters; JPEG, H.264 and the blur run in C (OpenCV, FFmpeg).

Cost with the defaults, per batch of 32 patches on one core (OMP_NUM_THREADS=1, one OpenCV
thread) of this project's 2-core machine while two training runs shared it; best and median of
15: 96x96 at x2 65 and 80 ms, 192x192 at x4 80 and 110 ms. H.264 (3 frames) is about 1.5 ms a
patch, so at the default h264_prob = 0.5 it is about a third of the cost at x2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, get_args

import av
import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from vsr.errors import ConfigError
from vsr.ops.resize import resize

__all__ = ["RealisticDegradation", "RealisticParams", "ResizeKernel", "X264Preset", "degrade_realistic"]

ResizeKernel = Literal["area", "bilinear", "bicubic"]
X264Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]

_LUMA = np.array([0.299, 0.587, 0.114])  # BT.601, for grey noise
_PROBABILITIES = ("blur_prob", "blur_anisotropic_prob", "resize_alias_prob", "resize_extra_prob")
_PROBABILITIES += ("noise_prob", "noise_gaussian_prob", "noise_gray_prob", "jpeg_prob", "h264_prob")


@dataclass(frozen=True, kw_only=True)
class RealisticParams:
    """Probabilities and ranges of the realistic chain; ranges are ``(low, high)``, inclusive.

    The defaults follow Real-ESRGAN's first order, made milder where video is milder (noise) and
    with H.264 added because it is what real video inputs carry.
    """

    blur_prob: float = 0.8
    """How often a patch is blurred at all."""
    blur_anisotropic_prob: float = 0.5
    """Of the blurred patches, how many get an elongated, rotated kernel rather than a round one."""
    blur_sigma: tuple[float, float] = (0.05, 0.75)
    """Gaussian sigma in HR pixels per unit of scale (x4: 0.2-3.0 px, Real-ESRGAN's range), so the
    blur looks alike at LR whatever the scale."""
    blur_size_max: int = 21
    """Largest kernel side (odd); a kernel spans 3 sigma each side up to this."""
    resize_kernels: tuple[ResizeKernel, ...] = ("area", "bilinear", "bicubic")
    """Interpolations drawn from, each equally likely, for every resize step."""
    resize_alias_prob: float = 0.2
    """How often a bilinear or bicubic shrink skips antialiasing (as OpenCV and ``F.interpolate``
    do), leaving aliasing for the model to undo."""
    resize_extra_prob: float = 0.5
    """How often the patch goes through an intermediate size before the exact LR size."""
    resize_extra: tuple[float, float] = (0.6, 1.4)
    """Intermediate size relative to the LR size: below 1 blurs (shrunk too far, then enlarged),
    above 1 resizes twice."""
    noise_prob: float = 0.6
    """How often noise is added."""
    noise_gaussian_prob: float = 0.5
    """Of the noisy patches, how many get Gaussian rather than Poisson noise."""
    noise_gray_prob: float = 0.4
    """How often the noise is the same in R, G and B (luma noise) rather than per channel."""
    noise_sigma: tuple[float, float] = (1.0, 20.0)
    """Gaussian noise sigma in 8-bit units."""
    noise_poisson_scale: tuple[float, float] = (0.05, 2.0)
    """Poisson noise as ``scale * (Poisson(x) - x)`` on 8-bit values ``x``: std ``scale * sqrt(x)``."""
    jpeg_prob: float = 0.4
    """How often the patch is JPEG-compressed (4:2:0, OpenCV's libjpeg)."""
    jpeg_quality: tuple[int, int] = (40, 95)
    """JPEG quality, 1-100."""
    h264_prob: float = 0.5
    """How often the patch is H.264-compressed (after JPEG when both are drawn)."""
    h264_crf: tuple[int, int] = (18, 34)
    """libx264 constant rate factor, 0-51; 23 is its default, 18 near transparent."""
    h264_preset: X264Preset = "veryfast"
    """libx264 preset; streaming and phone encoders sit around veryfast."""
    h264_frames: int = 3
    """Frames in the encoded stream; the patch is the last, so with more than one it is a P frame
    predicted from shifted copies, as most frames of a real video are."""
    h264_motion: float = 2.0
    """Largest motion between frames, in LR pixels per frame (integer shifts)."""

    def __post_init__(self) -> None:
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"realistic degradation: {name} must be in [0, 1], got {value}")
        bounds = {
            "blur_sigma": (1e-3, math.inf),
            "resize_extra": (1e-3, math.inf),
            "noise_sigma": (0.0, math.inf),
            "noise_poisson_scale": (0.0, math.inf),
            "jpeg_quality": (1, 100),
            "h264_crf": (0, 51),
        }
        for name, (least, most) in bounds.items():
            low, high = getattr(self, name)
            if not least <= low <= high <= most:
                raise ConfigError(
                    f"realistic degradation: {name} must be (low, high) with {least} <= low <= high <= {most}, "
                    f"got {(low, high)}"
                )
        if not self.resize_kernels or not set(self.resize_kernels) <= set(get_args(ResizeKernel)):
            raise ConfigError(
                f"realistic degradation: resize_kernels must be a non-empty choice of "
                f"{', '.join(get_args(ResizeKernel))}, got {self.resize_kernels}"
            )
        if self.blur_size_max < 3 or self.blur_size_max % 2 == 0:
            raise ConfigError(
                f"realistic degradation: blur_size_max must be odd and >= 3, got {self.blur_size_max}"
            )
        if self.h264_preset not in get_args(X264Preset):
            raise ConfigError(
                f"realistic degradation: unknown x264 preset {self.h264_preset!r}; "
                f"expected one of {', '.join(get_args(X264Preset))}"
            )
        if self.h264_frames < 1 or self.h264_motion < 0:
            raise ConfigError(
                "realistic degradation: h264_frames must be >= 1 and h264_motion >= 0, "
                f"got {self.h264_frames} and {self.h264_motion}"
            )


def _gaussian_kernel(sigma_x: float, sigma_y: float, theta: float, size_max: int) -> NDArray[np.float64]:
    radius = min(math.ceil(3.0 * max(sigma_x, sigma_y)), size_max // 2)
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    inv_cov = np.linalg.inv(rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T)
    ax = np.arange(-radius, radius + 1, dtype=np.float64)
    xy = np.stack(np.meshgrid(ax, ax, indexing="xy"), axis=-1)
    kernel = np.exp(-0.5 * np.einsum("...i,ij,...j->...", xy, inv_cov, xy))
    return kernel / kernel.sum()


def _blur(
    img: NDArray[np.float64], p: RealisticParams, scale: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    if rng.random() >= p.blur_prob:
        return img
    low, high = p.blur_sigma[0] * scale, p.blur_sigma[1] * scale
    if rng.random() < p.blur_anisotropic_prob:
        sigma_x, sigma_y = rng.uniform(low, high, size=2)
        theta = rng.uniform(0.0, math.pi)
    else:
        sigma_x = sigma_y = rng.uniform(low, high)
        theta = 0.0
    kernel = _gaussian_kernel(float(sigma_x), float(sigma_y), float(theta), p.blur_size_max)
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def _resize_once(
    img: NDArray[np.float64], size: tuple[int, int], p: RealisticParams, rng: np.random.Generator
) -> NDArray[np.float64]:
    kernel = p.resize_kernels[int(rng.integers(len(p.resize_kernels)))]
    # Box filtering without its antialiasing would be point sampling, which no scaler calls "area".
    alias = kernel != "area" and rng.random() < p.resize_alias_prob
    chw = torch.from_numpy(img).permute(2, 0, 1)
    out = resize(chw, size, kernel=kernel, antialias=not alias)
    return np.ascontiguousarray(out.permute(1, 2, 0).numpy())


def _resize(
    img: NDArray[np.float64], size: tuple[int, int], p: RealisticParams, rng: np.random.Generator
) -> NDArray[np.float64]:
    if rng.random() < p.resize_extra_prob:
        f = rng.uniform(*p.resize_extra)
        img = _resize_once(img, (max(1, round(size[0] * f)), max(1, round(size[1] * f))), p, rng)
    return _resize_once(img, size, p, rng)


def _noise(img: NDArray[np.float64], p: RealisticParams, rng: np.random.Generator) -> NDArray[np.float64]:
    if rng.random() >= p.noise_prob:
        return img
    gray = rng.random() < p.noise_gray_prob
    if rng.random() < p.noise_gaussian_prob:
        sigma = rng.uniform(*p.noise_sigma)
        shape = (*img.shape[:2], 1) if gray else img.shape
        return img + sigma * rng.standard_normal(shape)
    scale = rng.uniform(*p.noise_poisson_scale)
    lam = np.clip(img, 0.0, 255.0)
    if gray:
        lam = (lam @ _LUMA)[..., None]
    return img + scale * (rng.poisson(lam) - lam)


def _to_uint8(img: NDArray[np.float64]) -> NDArray[np.uint8]:
    # Half away from zero after clipping, as BicubicDegradation and MATLAB round.
    return np.floor(np.clip(img, 0.0, 255.0) + 0.5).astype(np.uint8)


def _jpeg(img: NDArray[np.uint8], quality: int) -> NDArray[np.uint8]:
    # OpenCV reads BGR: giving it RGB would weigh R as B in its luma and shift where the loss falls.
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"OpenCV could not JPEG-encode a {img.shape} patch")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def _h264(frames: Sequence[NDArray[np.uint8]], *, crf: int, preset: str) -> NDArray[np.uint8]:
    """Encode ``frames`` as one H.264 stream (yuv420p) and decode it; returns the last frame."""
    h, w = frames[0].shape[:2]
    # 4:2:0 needs even sides: replicate the last row/column, encode, and cut it off again.
    pad = ((0, h % 2), (0, w % 2), (0, 0))
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
    enc.time_base = Fraction(1, 25)
    enc.thread_count = 1  # x264 threads are costly to start for a patch, and keep the cores free
    # zerolatency: no B frames or lookahead, so a few frames come straight back as I, P, P...
    enc.options = {"crf": str(crf), "preset": preset, "tune": "zerolatency"}
    packets = []
    for pts, frame in enumerate(frames):
        # OpenCV's BT.601 limited-range conversion matches swscale's to one level and skips building
        # a swscale context per frame, which cost more than the encoding itself.
        yuv = cv2.cvtColor(np.pad(frame, pad, mode="edge"), cv2.COLOR_RGB2YUV_I420)
        vf = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        vf.pts = pts
        packets += enc.encode(vf)
    packets += enc.encode(None)
    dec = av.CodecContext.create("h264", "r")
    dec.thread_count = 1
    decoded = [f for packet in packets for f in dec.decode(packet)]
    decoded += dec.decode(None)
    if len(decoded) != len(frames):
        raise RuntimeError(f"H.264 round trip gave {len(decoded)} frames for {len(frames)}")
    rgb = cv2.cvtColor(decoded[-1].to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    return np.ascontiguousarray(rgb[:h, :w])


def _moving_frames(
    img: NDArray[np.uint8], count: int, motion: float, rng: np.random.Generator
) -> list[NDArray[np.uint8]]:
    # A steady pan ending on the patch itself, so the last frame is predicted from shifted
    # reconstructions and its block artefacts no longer sit on its own block grid.
    if count == 1:
        return [img]
    velocity = rng.uniform(-motion, motion, size=2)
    margin = math.ceil(motion * (count - 1))
    padded = np.pad(img, ((margin, margin), (margin, margin), (0, 0)), mode="symmetric")
    h, w = img.shape[:2]
    out = []
    for i in range(count):
        dy, dx = (margin + np.rint(velocity * (count - 1 - i))).astype(int)
        out.append(padded[dy : dy + h, dx : dx + w])
    return out


def _compress(img: NDArray[np.uint8], p: RealisticParams, rng: np.random.Generator) -> NDArray[np.uint8]:
    if rng.random() < p.jpeg_prob:
        img = _jpeg(img, int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1)))
    if rng.random() < p.h264_prob:
        crf = int(rng.integers(p.h264_crf[0], p.h264_crf[1] + 1))
        frames = _moving_frames(img, p.h264_frames, p.h264_motion, rng)
        img = _h264(frames, crf=crf, preset=p.h264_preset)
    return img


class RealisticDegradation:
    """The realistic chain as a `Degradation`: uint8 HR patches -> float32 LR in [0, 1]."""

    def __init__(self, scale: int, params: RealisticParams | None = None) -> None:
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        self.scale = scale
        self.params = params if params is not None else RealisticParams()
        if self.params.h264_prob > 0 and "libx264" not in av.codecs_available:
            raise ConfigError(
                "realistic degradation: this PyAV build has no libx264 encoder; "
                "install a PyAV wheel with libx264 or set h264_prob = 0"
            )

    def degrade_image(self, hr: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.uint8]:
        """One uint8 ``H x W x 3`` image -> its uint8 ``H/s x W/s x 3`` LR."""
        if hr.dtype != np.uint8 or hr.ndim != 3 or hr.shape[2] != 3:
            raise ValueError(f"realistic degradation needs uint8 H x W x 3, got {hr.dtype} {hr.shape}")
        h, w = hr.shape[:2]
        if h % self.scale or w % self.scale:
            raise ValueError(f"a {w}x{h} image is not a multiple of scale {self.scale}; modcrop it first")
        p = self.params
        img = _blur(np.asarray(hr, dtype=np.float64, order="C"), p, self.scale, rng)
        img = _resize(img, (h // self.scale, w // self.scale), p, rng)
        img = _noise(img, p, rng)
        return _compress(_to_uint8(img), p, rng)

    def __call__(self, hr: Tensor, rng: np.random.Generator) -> Tensor:
        if hr.dtype != torch.uint8 or hr.dim() != 4 or hr.shape[1] != 3:
            raise ValueError(
                f"realistic degradation needs uint8 N x 3 x H x W, got {hr.dtype} {tuple(hr.shape)}"
            )
        patches = hr.permute(0, 2, 3, 1).numpy()
        lr = np.stack([self.degrade_image(patch, rng) for patch in patches])
        return torch.from_numpy(lr).permute(0, 3, 1, 2).to(torch.float32) / 255.0


def degrade_realistic(
    hr: NDArray[np.uint8],
    scale: int,
    *,
    seed: int | Sequence[int] = 0,
    params: RealisticParams | None = None,
) -> NDArray[np.uint8]:
    """A whole (modcropped) uint8 ``H x W x 3`` image through the realistic chain, seeded.

    For evaluation sets such as "Set14, realistically degraded": give each image its own fixed
    seed, e.g. ``seed=(base, index)``, so every run scores the same inputs.
    """
    return RealisticDegradation(scale, params).degrade_image(hr, np.random.default_rng(seed))
