"""Device colour conversion: exact known values, agreement with swscale, and round trips."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from vsr.ops.color import SampleFormat, chroma_size, planes_to_rgb, rgb_to_planes


def _fmt(**kw: object) -> SampleFormat:
    base: dict[str, object] = dict(family="yuv", bits=8, chroma_w=1, chroma_h=1, matrix=1, full_range=False)
    base.update(kw)
    return SampleFormat(**base)  # type: ignore[arg-type]


def _flat_planes(
    fmt: SampleFormat, y: int, u: int, v: int, h: int = 8, w: int = 8
) -> tuple[torch.Tensor, ...]:
    ch, cw = chroma_size(h, w, fmt)
    dt = fmt.container_dtype
    return (
        torch.full((1, h, w), y, dtype=dt),
        torch.full((1, ch, cw), u, dtype=dt),
        torch.full((1, ch, cw), v, dtype=dt),
    )


@pytest.mark.parametrize(
    ("matrix", "yuv", "rgb"),
    [
        (1, (16, 128, 128), (0.0, 0.0, 0.0)),  # black
        (1, (235, 128, 128), (1.0, 1.0, 1.0)),  # white
        (1, (63, 102, 240), (1.0, 0.0, 0.0)),  # BT.709 red (ITU-R BT.709 table: Y'CbCr 63/102/240)
        (5, (81, 90, 240), (1.0, 0.0, 0.0)),  # BT.601 red: 81/90/240
        (9, (74, 97, 240), (1.0, 0.0, 0.0)),  # BT.2020 red: 74/97/240 (rounded)
    ],
)
def test_known_limited_range_values(matrix: int, yuv: tuple[int, int, int], rgb: tuple[float, ...]) -> None:
    fmt = _fmt(matrix=matrix)
    out = planes_to_rgb(_flat_planes(fmt, *yuv), fmt)[0, :, 4, 4]
    # 8-bit code values are rounded, so the primaries are within about one code of exact
    assert torch.allclose(out, torch.tensor(rgb), atol=2.5 / 255), out


def test_full_range_and_ten_bit_scaling() -> None:
    full = _fmt(full_range=True)
    assert torch.allclose(planes_to_rgb(_flat_planes(full, 255, 128, 128), full)[0, :, 0, 0], torch.ones(3))
    ten = _fmt(bits=10)
    assert torch.allclose(planes_to_rgb(_flat_planes(ten, 940, 512, 512), ten)[0, :, 0, 0], torch.ones(3))
    assert torch.allclose(planes_to_rgb(_flat_planes(ten, 64, 512, 512), ten)[0, :, 0, 0], torch.zeros(3))
    p010 = _fmt(family="nv", bits=10, msb_aligned=True)
    y = torch.full((1, 4, 4), 940 << 6, dtype=torch.uint16)
    uv = torch.full((1, 2, 2, 2), 512 << 6, dtype=torch.uint16)
    assert torch.allclose(planes_to_rgb((y, uv), p010)[0, :, 0, 0], torch.ones(3))
    back = rgb_to_planes(torch.ones(1, 3, 4, 4), p010)
    assert int(back[0][0, 0, 0]) == 940 << 6 and int(back[1][0, 0, 0, 0]) == 512 << 6


def test_flat_colours_match_swscale() -> None:
    """Where chroma is flat (siting cannot matter) our matrix maths agrees with swscale's."""
    rng = np.random.default_rng(1)
    for colorspace, matrix in (("ITU709", 1), ("ITU601", 5)):
        for _ in range(20):
            y, u, v = (int(x) for x in rng.integers([16, 16, 16], [236, 241, 241]))
            frame = av.VideoFrame(16, 16, "yuv420p")
            for plane, value in zip(frame.planes, (y, u, v), strict=True):
                plane.update(bytes([value]) * plane.buffer_size)
            ref = frame.reformat(format="rgb24", src_colorspace=colorspace).to_ndarray()[8, 8].astype(float)
            fmt = _fmt(matrix=matrix)
            ours = planes_to_rgb(_flat_planes(fmt, y, u, v, 16, 16), fmt)[0, :, 8, 8].clamp(0, 1) * 255
            # swscale's default integer path is off by up to ~2 codes; a wrong matrix is off by 10+
            assert np.abs(ours.numpy() - ref).max() <= 3.0, (colorspace, y, u, v, ours, ref)


@pytest.mark.parametrize(
    ("family", "bits", "cw", "ch"),
    [
        ("yuv", 8, 1, 1),
        ("yuv", 10, 1, 0),
        ("yuv", 8, 0, 0),
        ("yuv", 12, 0, 0),
        ("nv", 8, 1, 1),
        ("gbr", 8, 0, 0),
        ("gbr", 10, 0, 0),
        ("rgb", 8, 0, 0),
        ("bgr", 8, 0, 0),
    ],
)
def test_round_trip_of_smooth_rgb_is_within_a_code(family: str, bits: int, cw: int, ch: int) -> None:
    fmt = _fmt(family=family, bits=bits, chroma_w=cw, chroma_h=ch, matrix=9)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 37), torch.linspace(0, 1, 53), indexing="ij")
    rgb = torch.stack([0.1 + 0.8 * xx, 0.2 + 0.6 * yy, 0.5 + 0.3 * (xx - yy)])[None]  # odd size on purpose
    back = planes_to_rgb(rgb_to_planes(rgb, fmt), fmt)
    # a smooth gradient survives subsampling; the error is quantisation (and edge rows for 4:2:0)
    assert (back - rgb).abs()[..., 1:-1, 1:-1].max() < 2.0 / fmt.max_code + 2e-3


def test_planes_have_the_shapes_and_dtypes_an_encoder_takes() -> None:
    fmt = _fmt(bits=10)
    planes = rgb_to_planes(torch.rand(2, 3, 9, 15), fmt)
    assert [tuple(p.shape) for p in planes] == [(2, 9, 15), (2, 5, 8), (2, 5, 8)]
    assert all(p.dtype == torch.uint16 for p in planes)
    assert max(int(p.to(torch.int32).max()) for p in planes) <= 1023
