"""glibc malloc thresholds for the `vsr` process: large tensors reused from the heap, not mapped anew.

glibc serves an allocation above ``M_MMAP_THRESHOLD`` (128 KiB, raised on the fly up to 32 MiB)
with a fresh ``mmap`` and unmaps it on free, and it returns the top of the heap to the system past
``M_TRIM_THRESHOLD``. PyTorch's CPU tensors come from malloc, so every model call on the CPU maps,
faults in page by page and unmaps its activations again: on vtest (768x576, x2, compact-x2 bf16,
2 threads) `vsr upscale` took 46.7-46.9 s for 40 frames with the defaults and 27.5-28.2 s with both
thresholds set high, with identical output (`tools/bench_allocator.py`, docs/BENCHMARKS.md). The
price is memory kept for reuse: peak RSS 0.82 -> 0.89-0.93 GB there.

Only the command line does this, since it owns the process; a program that imports `vsr` keeps
its allocator as it is. ``VSR_MALLOC=system`` leaves glibc's defaults, as does a
``GLIBC_TUNABLES`` that sets malloc tunables itself; other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["ENV", "THRESHOLD", "tune_malloc"]

ENV = "VSR_MALLOC"  # "system": leave glibc's malloc as it is
THRESHOLD = 2**31 - 1  # bytes; mallopt takes an int
_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3


def tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds to `THRESHOLD`; True if they were set."""
    if os.environ.get(ENV, "").strip().lower() == "system":
        return False
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # glibc only: musl's mallopt does nothing, and it has no gnu_get_libc_version
    if not (hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt")):
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, THRESHOLD))
