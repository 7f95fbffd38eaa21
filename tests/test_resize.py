"""`vsr.ops.resize` against Pillow, against MATLAB's published kernel weights, and border semantics.

Pillow and MATLAB agree on kernels, half-pixel centres and antialiasing, but not at the borders:
Pillow drops taps that fall outside the image and renormalises, MATLAB mirrors them. So Pillow
comparisons cover the interior (every output pixel whose taps stay inside the image), and the
borders are checked against explicitly padded images instead.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vsr.errors import ModelError
from vsr.models import load_model
from vsr.ops.resize import interpolation_matrix, output_size, resize

PIL_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
SUPPORT = {"bicubic": 2.0, "lanczos": 3.0}  # half-widths in input pixels at scale 1
FACTORS = [2.0, 3.0, 0.5, 0.3]


@pytest.fixture(scope="module")
def butterfly(shared_data: Path) -> np.ndarray:
    path = shared_data / "images" / "eval" / "Set5" / "butterfly.png"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    # A 96x128 crop keeps the test fast; the butterfly's wing edges stress the kernels.
    return np.asarray(Image.open(path).convert("RGB"))[40:136, 64:192]


def _target(shape: tuple[int, ...], factor: float) -> tuple[int, int]:
    return round(shape[0] * factor), round(shape[1] * factor)


def _interior(in_size: int, out_size: int, kernel: str) -> slice:
    """Output pixels whose (antialiased) kernel support lies inside the image, so no border rule applies."""
    scale = out_size / in_size
    half = SUPPORT[kernel] / min(scale, 1.0)  # in input pixels
    margin = math.ceil((half + 1.0) * scale) + 1
    return slice(margin, out_size - margin)


def _ours(img: np.ndarray, size: tuple[int, int], kernel: str) -> np.ndarray:
    x = torch.from_numpy(img.astype(np.float64)).permute(2, 0, 1)[None]
    return resize(x, size, kernel=kernel)[0].permute(1, 2, 0).numpy()  # type: ignore[arg-type]


@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("kernel", ["bicubic", "lanczos"])
def test_matches_pillow_float(butterfly: np.ndarray, kernel: str, factor: float) -> None:
    """Pillow's float ("F") mode computes in double without intermediate rounding: exact comparison."""
    out_h, out_w = _target(butterfly.shape, factor)
    ours = _ours(butterfly, (out_h, out_w), kernel)
    ys = _interior(butterfly.shape[0], out_h, kernel)
    xs = _interior(butterfly.shape[1], out_w, kernel)
    for c in range(3):
        plane = Image.fromarray(butterfly[..., c].astype(np.float32), mode="F")
        theirs = np.asarray(plane.resize((out_w, out_h), PIL_FILTERS[kernel]), dtype=np.float64)
        # float32 storage of 0..255 values between Pillow's two passes: ~1e-5 relative error
        assert np.abs(ours[ys, xs, c] - theirs[ys, xs]).max() < 2e-3


@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("kernel", ["bicubic", "lanczos"])
def test_matches_pillow_uint8(butterfly: np.ndarray, kernel: str, factor: float) -> None:
    """8-bit Pillow rounds and clips to uint8 between its horizontal and vertical passes (and uses
    22-bit fixed-point weights), so many pixels are off by one level and a few, where a cubic or
    Lanczos overshoot above 255 or below 0 was clipped mid-way, by up to 4. We measure 54-58 dB;
    the usual mistakes measure below 45 dB on this crop: align-corners 34 dB, torch's a=-0.75
    cubic 43 dB (x2), no antialiasing 30 dB (x0.5). The float test above is the tight one."""
    out_h, out_w = _target(butterfly.shape, factor)
    ours = np.clip(np.round(_ours(butterfly, (out_h, out_w), kernel)), 0, 255)
    theirs = np.asarray(
        Image.fromarray(butterfly).resize((out_w, out_h), PIL_FILTERS[kernel]), dtype=np.float64
    )
    ys = _interior(butterfly.shape[0], out_h, kernel)
    xs = _interior(butterfly.shape[1], out_w, kernel)
    mse = np.mean((ours[ys, xs] - theirs[ys, xs]) ** 2)
    assert 10 * math.log10(255.0**2 / max(mse, 1e-12)) > 45.0
    assert np.mean(np.abs(ours[ys, xs] - theirs[ys, xs]) <= 1) > 0.999


def test_bicubic_x2_weights_are_matlabs() -> None:
    """x2 bicubic: every output pixel sits 1/4 pixel from an input centre; Keys' a=-0.5 weights
    there are the textbook (-0.0234375, 0.2265625, 0.8671875, -0.0703125)."""
    w = interpolation_matrix(10, 20, dtype=torch.float64)
    expected = torch.tensor([-0.0234375, 0.2265625, 0.8671875, -0.0703125], dtype=torch.float64)
    row = w[8]  # output pixel 8 (0-based): centre at input 3.75, i.e. 0.25 past input pixel 3
    torch.testing.assert_close(row[2:6], expected, rtol=0, atol=1e-15)
    assert row[:2].abs().sum() == 0 and row[6:].abs().sum() == 0
    torch.testing.assert_close(w[9][3:7], expected.flip(0), rtol=0, atol=1e-15)


@pytest.mark.parametrize("kernel", ["bicubic", "lanczos", "bilinear", "box", "area"])
@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize(("n_in", "n_out"), [(17, 40), (40, 17), (9, 9), (7, 2), (1, 5), (300, 7)])
def test_weights_sum_to_one(kernel: str, antialias: bool, n_in: int, n_out: int) -> None:
    for border in ("symmetric", "replicate"):
        w = interpolation_matrix(
            n_in,
            n_out,
            kernel=kernel,
            antialias=antialias,
            border=border,
            dtype=torch.float64,  # type: ignore[arg-type]
        )
        assert w.shape == (n_out, n_in)
        assert (w.sum(dim=1) - 1).abs().max().item() < 1e-12


@pytest.mark.parametrize("kernel", ["bicubic", "lanczos", "bilinear", "box"])
@pytest.mark.parametrize("size", [(40, 9), (5, 7), (3, 300), (1, 1)])
def test_constant_image_stays_constant(kernel: str, size: tuple[int, int]) -> None:
    x = torch.full((2, 3, 17, 23), 0.7)
    for border in ("symmetric", "replicate"):
        y = resize(x, size, kernel=kernel, border=border)  # type: ignore[arg-type]
        assert y.shape == (2, 3, *size)
        assert (y - 0.7).abs().max().item() < 1e-6


@pytest.mark.parametrize(("border", "np_mode"), [("symmetric", "symmetric"), ("replicate", "edge")])
@pytest.mark.parametrize("kernel", ["bicubic", "lanczos"])
@pytest.mark.parametrize("factor", [2, 0.5])
def test_border_equals_explicit_padding(border: str, np_mode: str, kernel: str, factor: float) -> None:
    """With an integer ratio, padding p input pixels shifts the output grid by exactly p*factor
    pixels, so resizing a padded image and cropping must equal the border rule applied inside."""
    rng = np.random.default_rng(0)
    img = rng.random((12, 16))
    pad = 8  # even, so it maps to whole output pixels at x0.5, and wider than any kernel here
    padded = np.pad(img, pad, mode=np_mode)
    size = (int(12 * factor), int(16 * factor))
    psize = (int(padded.shape[0] * factor), int(padded.shape[1] * factor))
    direct = resize(torch.from_numpy(img)[None, None], size, kernel=kernel, border=border)[0, 0]  # type: ignore[arg-type]
    via_pad = resize(torch.from_numpy(padded)[None, None], psize, kernel=kernel, border=border)[0, 0]  # type: ignore[arg-type]
    off = int(pad * factor)
    torch.testing.assert_close(direct, via_pad[off : off + size[0], off : off + size[1]], rtol=0, atol=1e-12)


def test_symmetric_and_replicate_differ_only_at_the_border() -> None:
    x = torch.from_numpy(np.random.default_rng(1).random((1, 1, 20, 20)))
    sym = resize(x, (40, 40), border="symmetric")[0, 0]
    rep = resize(x, (40, 40), border="replicate")[0, 0]
    assert (sym[:2] - rep[:2]).abs().max().item() > 1e-3
    # bicubic taps reach 2 input pixels: from output pixel 4 on, no tap leaves the image
    torch.testing.assert_close(sym[4:-4, 4:-4], rep[4:-4, 4:-4], rtol=0, atol=1e-12)


def test_scale_factor_follows_matlab() -> None:
    x = torch.from_numpy(np.random.default_rng(2).random((1, 1, 10, 10)))
    # MATLAB: output size ceil(scale * in), and the kernel uses the given scale, not out/in
    assert output_size(10, 0.25) == 3
    y = resize(x, scale_factor=0.25)
    assert y.shape == (1, 1, 3, 3)
    w = interpolation_matrix(10, 3, scale=0.25, dtype=torch.float64)
    torch.testing.assert_close(y[0, 0], w @ x[0, 0] @ w.T)
    assert not torch.allclose(w, interpolation_matrix(10, 3, dtype=torch.float64))


def test_dtype_device_and_layout_are_kept() -> None:
    x = torch.rand(1, 3, 9, 11)
    ref = resize(x, (5, 20), kernel="lanczos")
    half = resize(x.bfloat16(), (5, 20), kernel="lanczos")
    assert half.dtype == torch.bfloat16 and (half.float() - ref).abs().max().item() < 0.03
    last = resize(x.contiguous(memory_format=torch.channels_last), (5, 20), kernel="lanczos")
    torch.testing.assert_close(last, ref)
    with pytest.raises(ValueError, match="floating-point"):
        resize(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), (2, 2))


def test_classic_models() -> None:
    loaded = load_model("lanczos", scale=3)
    d = loaded.descriptor
    assert (d.architecture, d.scale, d.receptive_radius, d.parameters) == ("lanczos", 3, 3, 0)
    assert d.precisions == frozenset({"fp32", "bf16", "fp16"})
    assert load_model("bicubic", scale=2).descriptor.receptive_radius == 2
    x = torch.rand(1, 3, 5, 7, dtype=torch.float64)
    with torch.no_grad():
        y = loaded.module(x)
    assert y.shape == (1, 3, 15, 21)
    # At x3 every third output pixel sits exactly on an input centre, where Lanczos interpolates.
    torch.testing.assert_close(y[..., 1::3, 1::3], x, rtol=0, atol=1e-12)
    assert (y[..., 0::3, 0::3] - x).abs().max().item() > 1e-3


@pytest.mark.parametrize("scale", [None, 0, 9])
def test_classic_needs_a_valid_scale(scale: int | None) -> None:
    with pytest.raises(ModelError, match="bicubic"):
        load_model("bicubic", scale=scale)
