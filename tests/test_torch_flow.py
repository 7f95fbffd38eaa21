"""TorchFlow: known sub-pixel and large shifts recovered, zero where nothing moves, real frames against
DIS, batches, the CPU and conv paths of its filter, bad inputs."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vsr.ops.flow import DisFlow
from vsr.ops.temporal import warp
from vsr.ops.torch_flow import TorchFlow, _gaussian_taps, _separable

H, W = 96, 128
MARGIN = 16  # what a shift of up to 7 px brings in from outside the frame, and then some


def texture(seed: int = 0, height: int = H, width: int = W, sigma: float = 2.0) -> torch.Tensor:
    """``1 x 1 x H x W`` smooth random texture in [0, 1]: Gaussian-blurred uniform noise."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 1, height + 32, width + 32, generator=g)
    taps = torch.tensor(_gaussian_taps(int(6 * sigma) | 1, sigma))
    k = taps.numel()
    blurred = F.conv2d(F.conv2d(noise, taps.view(1, 1, 1, k)), taps.view(1, 1, k, 1))
    blurred = blurred[..., :height, :width]
    return (blurred - blurred.min()) / (blurred.max() - blurred.min())


def shifted(image: torch.Tensor, dx: float, dy: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``image`` moved so that ``out(x, y) = image(x + dx, y + dy)``, and that (constant) flow."""
    flow = torch.empty(image.shape[0], 2, *image.shape[-2:])
    flow[:, 0], flow[:, 1] = dx, dy
    return warp(image, flow), flow


def interior(flow: torch.Tensor) -> torch.Tensor:
    return flow[..., MARGIN:-MARGIN, MARGIN:-MARGIN]


@pytest.mark.parametrize(("dx", "dy", "tolerance"), [(2.5, -1.25, 0.1), (-0.4, 0.7, 0.1), (7.0, 3.0, 0.3)])
def test_a_known_translation_is_recovered(dx: float, dy: float, tolerance: float) -> None:
    previous = texture()
    current, truth = shifted(previous, dx, dy)
    flow = TorchFlow()(current, previous)
    assert flow.shape == (1, 2, H, W) and flow.dtype == torch.float32
    inner = interior(flow)
    assert abs(inner[0, 0].median().item() - dx) < tolerance
    assert abs(inner[0, 1].median().item() - dy) < tolerance
    # not only the median: nearly every interior pixel (measured: the worst within 0.12 px at 7 px)
    assert (inner - interior(truth)).abs().quantile(0.99).item() < 2 * tolerance


def test_the_pyramid_is_what_recovers_a_large_shift() -> None:
    previous = texture(1)
    current, _ = shifted(previous, 7.0, -6.0)
    pyramid = interior(TorchFlow()(current, previous))
    assert abs(pyramid[0, 0].median().item() - 7.0) < 0.3 and abs(pyramid[0, 1].median().item() + 6.0) < 0.3
    # one level, the same work: Lucas-Kanade's linearisation does not reach 7 px on this texture
    single = interior(TorchFlow(levels=1)(current, previous))
    assert abs(single[0, 0].median().item() - 7.0) > 1.0


def test_identical_frames_give_no_flow_and_flat_frames_do_not_blow_up() -> None:
    image = texture(2)
    assert TorchFlow()(image, image).abs().max().item() < 0.05
    # no gradient at all: the regulariser makes the 2x2 solve give 0, not 0 / 0
    flat = torch.full((1, 1, 40, 60), 0.5)
    flow = TorchFlow()(flat + 0.02, flat)
    assert torch.isfinite(flow).all() and flow.abs().max().item() < 1e-3
    # faint noise on a flat picture: small motion, not the tens of pixels an unregularised solve gives
    g = torch.Generator().manual_seed(3)
    noisy = flat + torch.randn(flat.shape, generator=g) / 255
    assert TorchFlow()(noisy, flat).abs().max().item() < 1.0


def _grey_pair(path: Path, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames ``start`` and ``start + 1`` of ``path`` as ``1 x 1 x H x W`` luma in [0, 1]."""
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= start:
                frames.append(frame.to_ndarray(format="gray"))
            if len(frames) == 2:
                break
    previous, current = (torch.from_numpy(f).float().div(255.0)[None, None] for f in frames)
    return current, previous


def _error(current: torch.Tensor, previous: torch.Tensor, flow: torch.Tensor) -> float:
    return (current - warp(previous, flow)).abs().mean().item()


def test_on_real_frames_it_matches_dis(shared_data: Path) -> None:
    path = shared_data / "video" / "foreman_cif.264"
    if not path.is_file():
        pytest.skip(f"{path} not found (see ../shared/data/MANIFEST.md)")
    current, previous = _grey_pair(path, 0)
    u8 = [(t[0, 0] * 255).round().to(torch.uint8).numpy() for t in (current, previous)]
    dis = torch.from_numpy(DisFlow("medium")(*u8)).permute(2, 0, 1)[None]
    ours = TorchFlow()(current, previous)
    e_ours, e_dis = _error(current, previous, ours), _error(current, previous, dis)
    e_zero = _error(current, previous, torch.zeros_like(ours))
    # measured on this pair: 0.83 of DIS medium's error, 0.25 of zero flow's
    assert e_ours <= 1.25 * e_dis, (e_ours, e_dis)
    assert e_ours <= 0.7 * e_zero, (e_ours, e_zero)


def test_a_batch_gives_what_each_pair_gives_alone() -> None:
    a, b = texture(4), texture(5)
    a1, _ = shifted(a, 2.5, -1.25)
    b1, _ = shifted(b, -3.0, 5.5)
    flow = TorchFlow()
    batch = flow(torch.cat([a1, b1]), torch.cat([a, b]))
    assert batch.shape == (2, 2, H, W)
    assert torch.allclose(batch[:1], flow(a1, a), atol=1e-5)
    assert torch.allclose(batch[1:], flow(b1, b), atol=1e-5)
    # and the two did differ: the batch is not one pair's flow twice
    assert (batch[0] - batch[1]).abs().mean().item() > 1.0


def test_half_precision_and_odd_sizes_are_taken() -> None:
    previous = texture(6, height=77, width=101)
    current, _ = shifted(previous, 1.5, 0.5)
    flow = TorchFlow()(current.half(), previous.half())
    assert flow.shape == (1, 2, 77, 101) and flow.dtype == torch.float32
    inner = flow[..., 12:-12, 12:-12]
    assert abs(inner[0, 0].median().item() - 1.5) < 0.1 and abs(inner[0, 1].median().item() - 0.5) < 0.1


def test_the_cpu_filter_equals_the_depthwise_conv_the_gpu_uses() -> None:
    image = torch.rand(2, 5, 23, 31, generator=torch.Generator().manual_seed(7))
    taps = _gaussian_taps(7, 1.75)
    assert math.isclose(sum(taps), 1.0)
    a, b = _separable(image, taps, shifted=True), _separable(image, taps, shifted=False)
    assert a.shape == image.shape and torch.allclose(a, b, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_it_gives_what_the_cpu_gives() -> None:
    previous = texture(8)
    current, _ = shifted(previous, 2.5, -1.25)
    cpu = TorchFlow()(current, previous)
    gpu = TorchFlow()(current.cuda(), previous.cuda())
    assert gpu.device.type == "cuda" and torch.allclose(gpu.cpu(), cpu, atol=1e-3)


@pytest.mark.parametrize(
    ("current", "previous", "match"),
    [
        (
            torch.zeros(1, 1, 32, 32, dtype=torch.uint8),
            torch.zeros(1, 1, 32, 32),
            r"float grey frames.*uint8",
        ),
        (torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32), r"N x 1 x H x W.*\(1, 3, 32, 32\)"),
        (torch.zeros(32, 32), torch.zeros(32, 32), r"N x 1 x H x W.*\(32, 32\)"),
        (torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 40), r"one shape.*\(1, 1, 32, 40\)"),
        (torch.zeros(2, 1, 32, 32), torch.zeros(1, 1, 32, 32), r"one shape"),
        (torch.zeros(1, 1, 4, 32), torch.zeros(1, 1, 4, 32), r"at least 8 x 8"),
        (np.zeros((1, 1, 32, 32), np.float32), torch.zeros(1, 1, 32, 32), r"torch tensors.*ndarray"),
    ],
)
def test_bad_inputs_are_refused(current: object, previous: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TorchFlow()(current, previous)  # type: ignore[arg-type]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one pyramid level"):
        TorchFlow(levels=0)
    with pytest.raises(ValueError, match="at least one iteration"):
        TorchFlow(iterations=0)
    with pytest.raises(ValueError, match="odd size of 3 or more"):
        TorchFlow(window=6)
    with pytest.raises(ValueError, match="regularisation > 0"):
        TorchFlow(regularisation=0.0)  # flat regions would give 0 / 0


def test_dis_fine_finds_sub_pixel_motion_better_than_medium() -> None:
    # "fine" (vsr.ops.flow), the temporal step's estimator, carries DIS down to the frame's own
    # resolution; medium stops a level above it, which is what left sub-pixel motion rough
    image = texture(seed=9)
    moved, _ = shifted(image, 0.4, -0.3)
    u8 = [(t[0, 0] * 255).round().to(torch.uint8).numpy() for t in (moved, image)]
    error = {}
    for preset in ("medium", "fine"):
        flow = DisFlow(preset)(*u8)[MARGIN:-MARGIN, MARGIN:-MARGIN]  # type: ignore[arg-type]
        error[preset] = float(np.hypot(flow[..., 0] - 0.4, flow[..., 1] + 0.3).mean())
    assert error["fine"] < 0.01  # 0.004 px measured; medium 0.044
    assert error["fine"] < 0.3 * error["medium"], error
