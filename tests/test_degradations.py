"""The realistic degradation chain: shapes, determinism, and what each stage measurably does.

Each stage is checked alone against the clean bicubic LR (every other stage switched off), so a
stage that silently does nothing, or does too much, fails here. A few seconds on one core.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vsr.errors import ConfigError
from vsr.quality.metrics import psnr
from vsr.quality.protocol import load_image, modcrop
from vsr.train.data import PatchDataset
from vsr.train.degradations import DEGRADATIONS, BicubicDegradation, make_degradation
from vsr.train.realistic import RealisticDegradation, RealisticParams, degrade_realistic

# Every stage off but a plain antialiased bicubic shrink: the evaluation protocol's input.
CLEAN = RealisticParams(
    blur_prob=0.0,
    resize_kernels=("bicubic",),
    resize_alias_prob=0.0,
    resize_extra_prob=0.0,
    noise_prob=0.0,
    jpeg_prob=0.0,
    h264_prob=0.0,
)
# Every stage on, each time, so one patch exercises the whole chain.
EVERYTHING = RealisticParams(
    blur_prob=1.0, resize_extra_prob=1.0, noise_prob=1.0, jpeg_prob=1.0, h264_prob=1.0
)


def _texture(h: int, w: int, seed: int = 0, *, grain: int = 6) -> np.ndarray:
    # Upsampled noise in 50..205: detail for the codecs to lose, and no clipping of added noise.
    shape = (max(1, h // grain), max(1, w // grain), 3)
    small = np.random.default_rng(seed).integers(50, 206, shape, dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))


def _batch(n: int, h: int, w: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([_texture(h, w, i) for i in range(n)])).permute(0, 3, 1, 2).contiguous()


def _lr_uint8(params: RealisticParams, hr: np.ndarray, scale: int, seed: int = 0) -> np.ndarray:
    return RealisticDegradation(scale, params).degrade_image(hr, np.random.default_rng(seed))


@pytest.fixture(scope="module")
def photo(shared_data: Path) -> np.ndarray:
    folder = shared_data / "images" / "eval" / "Set5"
    if not (folder / "butterfly.png").is_file():
        pytest.skip(f"Set5 not found in {folder}; the H.264 check needs a real image")
    return modcrop(load_image(folder / "butterfly.png"), 4)


@pytest.mark.parametrize(("scale", "h", "w"), [(2, 96, 96), (2, 30, 46), (4, 36, 52), (4, 4, 4)])
@pytest.mark.parametrize("params", [RealisticParams(), EVERYTHING], ids=["defaults", "everything"])
def test_shape_dtype_and_range(scale: int, h: int, w: int, params: RealisticParams) -> None:
    # 30x46 at x2 and 36x52 at x4 give odd LR sides, which 4:2:0 H.264 cannot code unpadded.
    lr = RealisticDegradation(scale, params)(_batch(3, h, w), np.random.default_rng(1))
    assert lr.dtype == torch.float32
    assert lr.shape == (3, 3, h // scale, w // scale)
    assert 0.0 <= lr.min() and lr.max() <= 1.0
    assert torch.equal(torch.round(lr * 255.0) / 255.0, lr), "not on the 8-bit grid a decoder gives"


def test_same_seed_same_output_other_seed_other_output() -> None:
    hr = _batch(4, 48, 48)
    degradation = RealisticDegradation(2, EVERYTHING)
    first = degradation(hr, np.random.default_rng(7))
    assert torch.equal(first, RealisticDegradation(2, EVERYTHING)(hr, np.random.default_rng(7)))
    assert not torch.equal(first, degradation(hr, np.random.default_rng(8)))
    # Parameters are drawn per patch: the same HR four times gives four different LRs.
    same = degradation(hr[:1].expand(4, -1, -1, -1).contiguous(), np.random.default_rng(7))
    assert len({s.numpy().tobytes() for s in same}) == 4


def test_batches_are_a_pure_function_of_seed_and_step() -> None:
    images = [_texture(40, 56, i) for i in range(3)]

    def dataset() -> PatchDataset:
        return PatchDataset(
            images, patch_size=16, batch_size=4, degradation=make_degradation("realistic", 2), seed=11
        )

    lr, hr = dataset().batch(5)
    again_lr, again_hr = dataset().batch(5)
    assert torch.equal(lr, again_lr) and torch.equal(hr, again_hr)
    assert not torch.equal(lr, dataset().batch(6)[0])


def test_factory_and_registry() -> None:
    assert "realistic" in DEGRADATIONS
    degradation = make_degradation("realistic", 4)
    assert isinstance(degradation, RealisticDegradation) and degradation.scale == 4
    assert degradation.params == RealisticParams()
    with pytest.raises(ConfigError, match="available: bicubic, realistic"):
        make_degradation("real-esrgan", 4)


def test_only_bicubic_resize_is_the_bicubic_degradation() -> None:
    hr = _batch(3, 40, 56)
    for scale in (2, 4):
        expected = BicubicDegradation(scale)(hr, np.random.default_rng(0))
        assert torch.equal(RealisticDegradation(scale, CLEAN)(hr, np.random.default_rng(3)), expected)


def test_blur_and_extra_resize_soften_the_image() -> None:
    hr = _texture(96, 96, grain=2)
    clean = _lr_uint8(CLEAN, hr, 2)

    def detail(img: np.ndarray) -> float:
        return float(np.abs(np.diff(img.astype(np.float64), axis=1)).mean())

    blurred = _lr_uint8(replace(CLEAN, blur_prob=1.0, blur_sigma=(0.75, 0.75)), hr, 2)
    assert detail(blurred) < 0.8 * detail(clean)
    shrunk_further = _lr_uint8(replace(CLEAN, resize_extra_prob=1.0, resize_extra=(0.6, 0.6)), hr, 2)
    assert detail(shrunk_further) < 0.8 * detail(clean)


def test_anisotropic_blur_is_rotated() -> None:
    # A kernel aligned with the axes blurs diagonal and anti-diagonal stripes alike (they are
    # mirror images); only a rotated elongated kernel tells them apart.
    yy, xx = np.mgrid[:64, :64]
    diagonal = np.repeat((((xx + yy) % 8 < 4) * 255).astype(np.uint8)[..., None], 3, axis=2)
    anti = np.ascontiguousarray(diagonal[:, ::-1])

    def ratios(anisotropic: float) -> list[float]:
        params = replace(CLEAN, blur_prob=1.0, blur_anisotropic_prob=anisotropic, blur_sigma=(0.2, 1.0))
        return [
            float(np.std(_lr_uint8(params, diagonal, 2, seed=s)) / np.std(_lr_uint8(params, anti, 2, seed=s)))
            for s in range(6)
        ]

    assert max(abs(np.log(r)) for r in ratios(1.0)) > np.log(1.5)
    assert max(abs(np.log(r)) for r in ratios(0.0)) < np.log(1.05)


def test_jpeg_at_quality_10_costs_psnr() -> None:
    hr = _texture(96, 128)
    clean = _lr_uint8(CLEAN, hr, 2)
    q10 = psnr(_lr_uint8(replace(CLEAN, jpeg_prob=1.0, jpeg_quality=(10, 10)), hr, 2), clean)
    q95 = psnr(_lr_uint8(replace(CLEAN, jpeg_prob=1.0, jpeg_quality=(95, 95)), hr, 2), clean)
    assert q10 < 33.0 and q10 + 6.0 < q95


@pytest.mark.parametrize("gray", [False, True])
def test_gaussian_noise_has_the_asked_sigma(gray: bool) -> None:
    sigma = 10.0
    hr = _texture(128, 128)
    clean = _lr_uint8(CLEAN, hr, 2).astype(np.float64)
    params = replace(
        CLEAN,
        noise_prob=1.0,
        noise_gaussian_prob=1.0,
        noise_gray_prob=float(gray),
        noise_sigma=(sigma, sigma),
    )
    residual = (_lr_uint8(params, hr, 2).astype(np.float64) - clean) / 255.0
    assert residual.std() == pytest.approx(sigma / 255.0, rel=0.15)
    # Luma noise is the same draw in R, G and B (up to each channel's rounding); colour noise is not.
    correlation = np.corrcoef(residual[..., 0].ravel(), residual[..., 2].ravel())[0, 1]
    assert correlation > 0.95 if gray else abs(correlation) < 0.1


def test_poisson_noise_grows_with_the_signal() -> None:
    flat = np.full((64, 64, 3), 100, np.uint8)
    params = replace(
        CLEAN, noise_prob=1.0, noise_gaussian_prob=0.0, noise_gray_prob=0.0, noise_poisson_scale=(1, 1)
    )
    residual = _lr_uint8(params, flat, 2).astype(np.float64) - 100.0
    assert residual.std() == pytest.approx(10.0, rel=0.15)  # sqrt(100)


@pytest.mark.parametrize("frames", [1, 3])
def test_h264_round_trip_on_a_real_image(photo: np.ndarray, frames: int) -> None:
    hr = photo[: 4 * 45, : 4 * 59]  # an odd-sized LR (45 x 59) at x4
    clean = _lr_uint8(CLEAN, hr, 4)
    params = replace(CLEAN, h264_prob=1.0, h264_crf=(23, 23), h264_frames=frames)
    coded = _lr_uint8(params, hr, 4)
    assert coded.shape == clean.shape == (45, 59, 3)
    assert 25.0 < psnr(coded, clean) < 50.0, "H.264 at CRF 23 should lose a little, not everything"
    worse = _lr_uint8(replace(params, h264_crf=(40, 40)), hr, 4)
    assert psnr(worse, clean) < psnr(coded, clean)


def test_full_image_helper_is_seeded(photo: np.ndarray) -> None:
    lr = degrade_realistic(photo, 4, seed=(14, 0), params=EVERYTHING)
    assert lr.dtype == np.uint8 and lr.shape == (photo.shape[0] // 4, photo.shape[1] // 4, 3)
    assert np.array_equal(lr, degrade_realistic(photo, 4, seed=(14, 0), params=EVERYTHING))
    assert not np.array_equal(lr, degrade_realistic(photo, 4, seed=(14, 1), params=EVERYTHING))
    with pytest.raises(ValueError, match="modcrop"):
        degrade_realistic(photo[:-1], 4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"noise_prob": 1.5}, "noise_prob must be in"),
        ({"jpeg_quality": (90, 40)}, "jpeg_quality must be"),
        ({"h264_crf": (18, 60)}, "h264_crf must be"),
        ({"resize_kernels": ("nearest",)}, "resize_kernels"),
        ({"h264_preset": "fastest"}, "unknown x264 preset"),
        ({"blur_size_max": 20}, "blur_size_max"),
        ({"h264_frames": 0}, "h264_frames"),
    ],
)
def test_bad_parameters_are_refused_in_one_line(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        RealisticParams(**change)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
