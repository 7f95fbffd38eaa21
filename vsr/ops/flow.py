"""Dense optical flow on the host: OpenCV's DIS (Kroeger et al., "Fast Optical Flow using Dense
Inverse Search", ECCV 2016), on 8-bit grey frames.

This is the motion estimator of the CPU path and of the flicker metric. DIS is the cheapest dense
flow in OpenCV that copes with the motion of real video: on a 384x288 frame it takes about 3 ms
with the ``fast`` preset and 12 ms with ``medium`` on one core of the project's Xeon, against the
100+ ms an SR model spends on the same frame. On a GPU the temporal step uses `vsr.ops.torch_flow`
instead, so that the frames need not come back to the host.

The flow is *backward*: ``flow[y, x] = (dx, dy)`` says where pixel (x, y) of the current frame
was in the previous one, ``current(x, y) ~ previous(x + dx, y + dy)``, which is what warping the
previous frame onto the current one needs (`vsr.ops.temporal.warp`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

__all__ = ["DisFlow", "FlowPreset"]

FlowPreset = Literal["ultrafast", "fast", "medium", "fine", "fine-lite"]
_PRESETS: dict[str, int] = {"ultrafast": 0, "fast": 1, "medium": 2, "fine": 2, "fine-lite": 2}
# "fine": OpenCV's medium preset (patch 8, 25 gradient-descent and 5 variational-refinement
# iterations, stopping one pyramid level above the frame's resolution) carried on to the frame's own
# resolution (finest scale 0), with the work per level cut so that it costs about what medium does:
# patch stride 6 instead of 3, 8 gradient-descent and 2 refinement iterations. On a 384x288 frame
# on one core, 9.6 ms against medium's 7.3. It is the temporal step's estimator: the missing
# finest level is what let the smoothing blend across sub-pixel motion on small frames, and with
# it compact-x2 at strength 0.6 on vtest removes 32.6 % of the flicker for 0.035 dB, against 30.5 %
# for 0.054 with medium (docs/BENCHMARKS.md, `tools/sweep_temporal.py --preset`).
_FINE = {"finest_scale": 0, "patch_stride": 6, "gradient_descent": 8, "refinement": 2}
# "fine-lite": "fine" without the variational refinement, half its time (2.7 against 5.3 ms for
# 192x144 frames on a shared core). The denoise pre-pass's average measures its flow so, on 2x2
# blocks of the frame (`vsr.pipeline.temporal.MotionAverage`); the refinement changed its result by
# at most 0.02 dB (docs/BENCHMARKS.md).
_FINE_LITE = {**_FINE, "refinement": 0}


class DisFlow:
    """``flow(current, previous)`` -> float32 ``H x W x 2`` backward flow, in pixels.

    Holds OpenCV's DIS object, which keeps buffers between calls: one instance per thread.
    """

    def __init__(self, preset: FlowPreset = "medium") -> None:
        if preset not in _PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; expected one of {', '.join(_PRESETS)}")
        import cv2  # here, not at import time: most runs never estimate motion

        self.preset = preset
        self._dis: Any = cv2.DISOpticalFlow_create(_PRESETS[preset])
        if preset in ("fine", "fine-lite"):
            settings = _FINE if preset == "fine" else _FINE_LITE
            self._dis.setFinestScale(settings["finest_scale"])
            self._dis.setPatchStride(settings["patch_stride"])
            self._dis.setGradientDescentIterations(settings["gradient_descent"])
            self._dis.setVariationalRefinementIterations(settings["refinement"])

    def __call__(self, current: NDArray[np.uint8], previous: NDArray[np.uint8]) -> NDArray[np.float32]:
        if current.dtype != np.uint8 or previous.dtype != np.uint8:
            raise ValueError(f"DIS flow needs uint8 grey frames, got {current.dtype} and {previous.dtype}")
        if current.ndim != 2 or current.shape != previous.shape:
            raise ValueError(
                f"DIS flow needs two grey frames of one size, got {current.shape} and {previous.shape}"
            )
        # calc(I0, I1) finds f with I0(x) = I1(x + f(x)): I0 = current gives the backward flow
        flow = self._dis.calc(np.ascontiguousarray(current), np.ascontiguousarray(previous), None)
        return np.asarray(flow, dtype=np.float32)
