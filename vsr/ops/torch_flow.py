"""Dense optical flow on the model's device: coarse-to-fine, iterated, windowed Lucas-Kanade
(Lucas and Kanade 1981; Bouguet's pyramidal form) in plain torch, on float grey frames.

The alternative to `vsr.ops.flow.DisFlow` for frames that are already on a GPU: no trip to the
host and back, any batch size, nothing but convolutions, grid_sample and element-wise maths. The
frames are blurred a little (5-tap Gaussian, sigma 1) and halved until the short side is 16-32 px;
from the coarsest level down, each level runs a few Gauss-Newton steps: warp the previous frame by
the current estimate, sum the structure tensor of the mean gradient of both frames over a Gaussian
window, solve the 2x2 system per pixel with a Tikhonov term (flat regions get no update instead of
0 / 0), clip the step to 1 px and smooth the flow with a 3x3 box; then the flow is upsampled to the
next level and rescaled to its pixels.

Same convention as DIS, channels first and batched: the flow is *backward*, ``flow[n, :, y, x] =
(dx, dy)`` says where pixel (x, y) of the current frame was in the previous one, ``current(x, y) ~
previous(x + dx, y + dy)``, which is what `vsr.ops.temporal.warp` takes as is.

Measured (``tools/bench_flow.py``, vtest.avi, one core of the project's 2-core CPU, shared with a
training run, two runs): 9-11 ms per pair at 192x144, 27-29 ms at 384x288 and 62-68 ms at 640x360,
against 3.5-6, 14-15 and 30-31 ms for DIS ``medium`` (0.6-1.3, 3-3.8, 6-6.5 ms for ``fast``): about
2x DIS medium on the CPU. On a GPU the work is several hundred small kernels per pair at default
settings, so launch overhead, not arithmetic, should bound it at these sizes; it has not been timed
here. Quality: a smooth random texture shifted by (2.5, -1.25) px comes back within 0.002 px
(median) and 0.04 px (99th percentile), a 7 px shift within 0.07 px thanks to the pyramid; on real
frames the photometric error mean |current - warp(previous, flow)| is 0.78-0.83x that of DIS medium
on foreman (4 pairs) and 0.91-0.94x on vtest.avi at full size, 0.92-0.96x at the bench sizes.
Lucas-Kanade minimises exactly that error, while DIS also regularises its field variationally, so
the lower error is not a smoother flow: where there is no texture the flow is what the regulariser
and the 3x3 smoothing leave, and at occlusions and at the frame's edges (where the warp repeats the
border) it is as wrong as any local method's.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from vsr.ops.temporal import warp

__all__ = ["TorchFlow"]


def _gaussian_taps(size: int, sigma: float) -> tuple[float, ...]:
    """Normalised Gaussian taps, as Python floats (no device tensor to build or copy)."""
    taps = [math.exp(-0.5 * ((i - (size - 1) / 2) / sigma) ** 2) for i in range(size)]
    total = sum(taps)
    return tuple(t / total for t in taps)


def _separable(image: Tensor, taps: tuple[float, ...], *, shifted: bool | None = None) -> Tensor:
    """Each channel of ``image`` filtered by ``taps`` along x then y, edges replicated.

    On the CPU as a sum of shifted slices, which is ~10x faster there than the depthwise conv2d
    (measured: 1.1 against 12.8 ms for 5 x 288 x 384 and 7 taps, one core); elsewhere one
    depthwise conv2d per direction: one kernel launch each instead of one per tap. ``shifted``
    forces one or the other (the tests compare them).
    """
    k, pad = len(taps), len(taps) // 2
    h, w = image.shape[-2:]
    if shifted if shifted is not None else image.device.type == "cpu":
        # one pad for both passes: replicating rows commutes with filtering along them
        padded = F.pad(image, (pad, pad, pad, pad), mode="replicate")
        rows = padded[..., 0:w] * taps[0]
        for i in range(1, k):  # over the taps, not the pixels
            rows.add_(padded[..., i : i + w], alpha=taps[i])
        out = rows[..., 0:h, :] * taps[0]
        for i in range(1, k):
            out.add_(rows[..., i : i + h, :], alpha=taps[i])
        return out
    c = image.shape[1]
    kernel = _kernel(taps, image.device, image.dtype)
    image = F.pad(image, (pad, pad, 0, 0), mode="replicate")
    image = F.conv2d(image, kernel.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    image = F.pad(image, (0, 0, pad, pad), mode="replicate")
    return F.conv2d(image, kernel.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


@functools.lru_cache(maxsize=32)
def _kernel(taps: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> Tensor:
    """The taps as a tensor on ``device``, made once: not a host-to-device copy per filter call."""
    return torch.tensor(taps, device=device, dtype=dtype)


def _gradients(image: Tensor) -> tuple[Tensor, Tensor]:
    """Central differences of an ``N x C x H x W`` image (one-sided at the edges)."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    gx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) * 0.5
    gy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) * 0.5
    return gx, gy


def _resize_flow(flow: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of a pixel-unit flow, its components rescaled to the new pixel size."""
    h, w = flow.shape[-2:]
    out = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    out[:, 0].mul_(size[1] / w)  # Python scalars: no tensor to copy to the device
    out[:, 1].mul_(size[0] / h)
    return out


class TorchFlow:
    """``flow(current, previous)`` -> float32 ``N x 2 x H x W`` backward flow, in pixels.

    ``levels`` is the number of pyramid levels (``None``: as many halvings as leave the coarsest
    level 16-32 px on its short side; more than leave 4 px are not made), ``iterations`` the
    Lucas-Kanade steps per level and ``window`` the size (odd) of the Gaussian window, sigma a
    quarter of it, the structure tensor is summed over. ``regularisation`` is added to the diagonal
    of the per-pixel 2x2 system, in squared grey units of [0, 1] per pixel: the default 1e-4 damps
    the steps where the gradient is under ~2.5/255 per pixel, about the level of sensor noise.
    ``max_step`` clips each step, in pixels of its level. Inputs are taken in any float dtype and
    computed in float32; values are not checked to lie in [0, 1] (that would need a device sync),
    but the regularisation assumes that range. Stateless: one instance may serve any number of
    threads and devices.
    """

    def __init__(
        self,
        levels: int | None = None,
        iterations: int = 3,
        window: int = 7,
        *,
        regularisation: float = 1e-4,
        max_step: float = 1.0,
    ) -> None:
        if levels is not None and levels < 1:
            raise ValueError(f"TorchFlow needs at least one pyramid level, got levels={levels}")
        if iterations < 1:
            raise ValueError(f"TorchFlow needs at least one iteration per level, got {iterations}")
        if window < 3 or window % 2 == 0:
            raise ValueError(f"TorchFlow's window must be an odd size of 3 or more, got {window}")
        if not regularisation > 0 or not max_step > 0:
            raise ValueError(
                f"TorchFlow needs regularisation > 0 and max_step > 0, got {regularisation} and {max_step}"
            )
        self.levels = levels
        self.iterations = iterations
        self.window = window
        self.regularisation = regularisation
        self.max_step = max_step

    def _check(self, current: Tensor, previous: Tensor) -> None:
        for name, t in (("current", current), ("previous", previous)):
            if not isinstance(t, Tensor):
                raise ValueError(f"TorchFlow needs torch tensors, got {type(t).__name__} for {name}")
            if not t.is_floating_point():
                raise ValueError(f"TorchFlow needs float grey frames in [0, 1], got {t.dtype} for {name}")
            if t.ndim != 4 or t.shape[1] != 1:
                raise ValueError(
                    f"TorchFlow needs N x 1 x H x W grey frames, got {tuple(t.shape)} for {name}"
                )
        if current.shape != previous.shape:
            raise ValueError(
                f"TorchFlow needs two frames of one shape, got {tuple(current.shape)} and {tuple(previous.shape)}"
            )
        if current.device != previous.device:
            raise ValueError(
                f"TorchFlow needs both frames on one device, got {current.device} and {previous.device}"
            )
        if min(current.shape[-2:]) < 8 or current.shape[0] < 1:
            raise ValueError(f"TorchFlow needs frames of at least 8 x 8, got {tuple(current.shape)}")

    def _levels(self, height: int, width: int) -> int:
        short = min(height, width)
        if self.levels is not None:
            return max(1, min(self.levels, 1 + int(math.log2(short / 4))))  # no level under ~4 px
        return 1 + max(0, math.floor(math.log2(short / 16)))

    def __call__(self, current: Tensor, previous: Tensor) -> Tensor:
        self._check(current, previous)
        with torch.no_grad():
            return self._flow(current.float(), previous.float())

    def _flow(self, current: Tensor, previous: Tensor) -> Tensor:
        device = current.device
        levels = self._levels(*current.shape[-2:])
        pre = _gaussian_taps(5, 1.0)
        window = _gaussian_taps(self.window, self.window / 4)
        smooth = (1 / 3, 1 / 3, 1 / 3)

        # pyramid of both frames at once (channel 0 current, channel 1 previous), lightly blurred
        pyramid = [_separable(torch.cat([current, previous], dim=1), pre)]
        for _ in range(levels - 1):
            h, w = pyramid[-1].shape[-2:]
            pyramid.append(
                F.interpolate(
                    pyramid[-1], size=(h // 2, w // 2), mode="bilinear", antialias=True, align_corners=False
                )
            )

        flow = torch.zeros(current.shape[0], 2, *pyramid[-1].shape[-2:], device=device)
        lam = self.regularisation
        for level in reversed(pyramid):
            if flow.shape[-2:] != level.shape[-2:]:
                flow = _resize_flow(flow, level.shape[-2:])
            cur, prev = level[:, :1], level[:, 1:]
            cx, cy = _gradients(cur)
            for _ in range(self.iterations):
                warped = warp(prev, flow)
                wx, wy = _gradients(warped)
                # symmetric gradient (mean of both frames): better linearisation than either alone
                gx, gy = (cx + wx) * 0.5, (cy + wy) * 0.5
                gt = warped - cur
                s = _separable(torch.cat([gx * gx, gx * gy, gy * gy, gx * gt, gy * gt], dim=1), window)
                sxx, sxy, syy, sxt, syt = s.unbind(1)
                sxx, syy = sxx + lam, syy + lam
                det = sxx * syy - sxy * sxy
                du = (sxy * syt - syy * sxt) / det
                dv = (sxy * sxt - sxx * syt) / det
                step = torch.stack([du, dv], dim=1).clamp_(-self.max_step, self.max_step)
                flow = _separable(flow + step, smooth)
        return flow
