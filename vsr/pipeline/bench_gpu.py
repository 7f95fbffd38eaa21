"""GPU utilisation, memory, power and clocks sampled through NVML while `vsr bench` runs.

A background thread reads NVML every ``interval_s``; the bench keeps the mean and the peak of each
reading. When no CUDA device is in use, or NVML (nvidia-ml-py, or the driver's libnvidia-ml) is
missing, nothing is sampled and `GpuSampler.note` says why in one line instead.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import torch

__all__ = ["GpuReport", "GpuSampler"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class GpuReport:
    name: str
    samples: int
    utilization_mean_pct: float
    utilization_max_pct: float
    memory_used_max_mib: float
    memory_total_mib: float
    power_mean_w: float
    power_max_w: float
    sm_clock_mean_mhz: float
    memory_clock_mean_mhz: float


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 1) if values else 0.0


class GpuSampler:
    """Context manager: samples the device's GPU in a thread between enter and exit.

    ``report()`` is None (and ``note`` says why) when nothing could be sampled.
    """

    def __init__(self, device: torch.device, *, interval_s: float = 0.1) -> None:
        self.device = device
        self.interval_s = interval_s
        self.note: str | None = None
        self._nvml: Any = None
        self._handle: Any = None
        self._name = ""
        self._readings: dict[str, list[float]] = {k: [] for k in ("util", "mem", "power", "sm", "memclk")}
        self._memory_total = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _open(self) -> bool:
        if self.device.type != "cuda":
            self.note = f"GPU metrics: not sampled, the run used {self.device.type}, not a CUDA GPU"
            return False
        try:
            import pynvml
        except ImportError:
            self.note = "GPU metrics: not sampled, nvidia-ml-py (pynvml) is not installed"
            return False
        try:
            pynvml.nvmlInit()
            index = self.device.index if self.device.index is not None else torch.cuda.current_device()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._name = str(pynvml.nvmlDeviceGetName(self._handle))
            self._memory_total = pynvml.nvmlDeviceGetMemoryInfo(self._handle).total / 2**20
        except pynvml.NVMLError as exc:
            self.note = f"GPU metrics: not sampled, NVML is unavailable ({exc})"
            return False
        self._nvml = pynvml
        return True

    def _sample_once(self) -> None:
        nv, h = self._nvml, self._handle
        r = self._readings
        r["util"].append(float(nv.nvmlDeviceGetUtilizationRates(h).gpu))
        r["mem"].append(nv.nvmlDeviceGetMemoryInfo(h).used / 2**20)
        r["power"].append(nv.nvmlDeviceGetPowerUsage(h) / 1000.0)  # NVML reports milliwatts
        r["sm"].append(float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)))
        r["memclk"].append(float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM)))

    def _loop(self) -> None:
        while True:
            try:
                self._sample_once()
            except self._nvml.NVMLError as exc:
                # a reading this GPU does not support (power on some boards): stop, keep what we have
                self.note = f"GPU metrics: sampling stopped early ({exc})"
                return
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> Self:
        if self._open():
            self._thread = threading.Thread(target=self._loop, name="vsr-nvml", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:
                log.debug("nvmlShutdown failed", exc_info=True)

    def report(self) -> GpuReport | None:
        r = self._readings
        if not r["util"]:
            return None
        return GpuReport(
            name=self._name,
            samples=len(r["util"]),
            utilization_mean_pct=_mean(r["util"]),
            utilization_max_pct=max(r["util"]),
            memory_used_max_mib=round(max(r["mem"]), 1),
            memory_total_mib=round(self._memory_total, 1),
            power_mean_w=_mean(r["power"]),
            power_max_w=round(max(r["power"]), 1) if r["power"] else 0.0,
            sm_clock_mean_mhz=_mean(r["sm"]),
            memory_clock_mean_mhz=_mean(r["memclk"]),
        )
