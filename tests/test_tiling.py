"""Padding to a size multiple and seamless tiled inference."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vsr.models import RRDBNet, load_model
from vsr.models.classic import ClassicResize
from vsr.ops.tiling import pad_to_multiple, run_tiled

SIZE = (45, 71)  # deliberately not a multiple of the tile, nor of 2


@pytest.fixture(scope="module")
def image(shared_data: Path) -> torch.Tensor:
    path = shared_data / "images" / "eval" / "Set5" / "bird.png"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    rgb = np.asarray(Image.open(path).convert("RGB"))[100 : 100 + SIZE[0], 90 : 90 + SIZE[1]]
    return torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


def test_pad_to_multiple_reflects() -> None:
    x = torch.arange(45 * 71, dtype=torch.float32).reshape(1, 1, 45, 71)
    padded, (h, w) = pad_to_multiple(x, 4)
    assert (h, w) == (45, 71) and padded.shape == (1, 1, 48, 72)
    assert torch.equal(padded[..., :45, :71], x)
    # reflection mirrors about the edge pixel without repeating it
    assert torch.equal(padded[..., 45:48, :71], x[..., [43, 42, 41], :])
    assert torch.equal(padded[..., :45, 71], x[..., :, 69])
    same, size = pad_to_multiple(x, 1)
    assert same is x and size == (45, 71)


def test_pad_to_multiple_replicates_tiny_images() -> None:
    x = torch.tensor([[[[0.1, 0.2]]]])  # 1x2: reflecting 3 rows is impossible
    padded, (h, w) = pad_to_multiple(x, 4)
    assert (h, w) == (1, 2) and padded.shape == (1, 1, 4, 4)
    assert torch.equal(padded[0, 0], torch.tensor([[0.1, 0.2, 0.2, 0.2]] * 4))


def _max_tiled_error(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    scale: int,
    tile: int,
    overlap: int,
    multiple: int = 1,
) -> float:
    with torch.no_grad():
        whole = run_tiled(fn, x, scale=scale, tile=0, overlap=0, multiple=multiple)
        tiled = run_tiled(fn, x, scale=scale, tile=tile, overlap=overlap, multiple=multiple)
    assert whole.shape == tiled.shape == (x.shape[0], 3, x.shape[-2] * scale, x.shape[-1] * scale)
    return (whole - tiled).abs().max().item()


def test_compact_tiling_is_seamless(shared_data: Path, image: torch.Tensor) -> None:
    path = shared_data / "weights" / "realesr-animevideov3.pth"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    loaded = load_model(path)
    radius = loaded.descriptor.receptive_radius
    assert radius == 18
    assert _max_tiled_error(loaded.module, image, scale=4, tile=32, overlap=radius) < 1e-5
    # The same check fails when the overlap is too small: it can detect seams.
    assert _max_tiled_error(loaded.module, image, scale=4, tile=32, overlap=4) > 1e-3


def test_unshuffling_rrdb_tiling_is_seamless(image: torch.Tensor, tmp_path: Path) -> None:
    """An x2 RRDB pixel-unshuffles by 2: tiles must stay on the even grid of the padded image."""
    torch.manual_seed(0)
    net = RRDBNet(scale=2, num_feat=4, num_block=1, num_grow_ch=4).eval()
    path = tmp_path / "rrdb_x2.pth"
    torch.save(net.state_dict(), path)
    d = load_model(path).descriptor
    assert d.size_multiple == 2 and d.receptive_radius == (2 + 15 + 2 + 2) * 2 + 1
    # odd tile and overlap get rounded up to the multiple; 45 rows get padded to 46
    err = _max_tiled_error(net, image, scale=2, tile=15, overlap=d.receptive_radius, multiple=2)
    assert err < 1e-5
    assert _max_tiled_error(net, image, scale=2, tile=15, overlap=3, multiple=2) > 1e-4


def test_classic_tiling_is_seamless(image: torch.Tensor) -> None:
    fn = ClassicResize("lanczos", 3)
    assert _max_tiled_error(fn, image, scale=3, tile=16, overlap=3) < 1e-5
    assert _max_tiled_error(fn, image, scale=3, tile=16, overlap=1) > 1e-4


def test_tile_larger_than_image_and_batch(image: torch.Tensor) -> None:
    x = torch.cat([image, image.flip(-1)])
    fn = ClassicResize("bicubic", 2)
    out = run_tiled(fn, x, scale=2, tile=500, overlap=2)
    torch.testing.assert_close(out, fn(x), rtol=0, atol=0)
    torch.testing.assert_close(out[1], out[0].flip(-1), rtol=0, atol=1e-6)


def test_wrong_scale_is_reported() -> None:
    with pytest.raises(ValueError, match=r"returned \(1, 3, 16, 16\), expected \(32, 32\)"):
        run_tiled(lambda t: t, torch.zeros(1, 3, 16, 16), scale=2, tile=8, overlap=4)


def test_every_window_has_one_shape(image: torch.Tensor) -> None:
    fn = ClassicResize("bicubic", 2)
    x = image[..., :37, :50]
    shapes = []

    def record(t: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(t.shape))
        return fn(t)

    out = run_tiled(record, x, scale=2, tile=16, overlap=4)
    # a 3 x 4 grid of tiles; the windows at the edges moved inward, not cut short
    assert len(shapes) == 12 and set(shapes) == {(1, 3, 24, 24)}
    torch.testing.assert_close(out, fn(x), rtol=0, atol=1e-6)
