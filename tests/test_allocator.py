"""vsr.cli.allocator: glibc's mmap threshold lifted, so a large allocation comes from the heap."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

try:
    _LIBC = ctypes.CDLL("libc.so.6")
    _HAS_MALLINFO2 = hasattr(_LIBC, "mallinfo2") and hasattr(_LIBC, "gnu_get_libc_version")
except OSError:
    _HAS_MALLINFO2 = False

pytestmark = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and _HAS_MALLINFO2), reason="needs glibc 2.33+ (mallinfo2)"
)

# Bytes glibc holds in mmap'ed blocks (mallinfo2's hblkhd) gained by one 20 MiB malloc, in a fresh
# process: glibc's default threshold (128 KiB at start) maps it; after tune_malloc it is not mapped.
_PROBE = """
import ctypes, sys
from vsr.cli.allocator import tune_malloc
print(tune_malloc())
libc = ctypes.CDLL("libc.so.6")
names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in names]
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
before = libc.mallinfo2().hblkhd
block = libc.malloc(20 << 20)
print(libc.mallinfo2().hblkhd - before)
"""


def _probe(**env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if k not in ("VSR_MALLOC", "GLIBC_TUNABLES")}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**clean, **env}, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


def test_a_large_allocation_comes_from_the_heap_once_tuned() -> None:
    tuned, mapped = _probe()
    assert (tuned, mapped) == ("True", 0)


@pytest.mark.parametrize(
    "env", [{"VSR_MALLOC": "system"}, {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072"}]
)
def test_the_user_can_keep_the_system_allocator(env: dict[str, str]) -> None:
    tuned, mapped = _probe(**env)
    assert tuned == "False"
    assert mapped >= 20 << 20  # glibc mapped it, as it does by default
