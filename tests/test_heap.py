"""peer.heap: free blocks left inside glibc's heap go back to the OS (a real process's RSS)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's"
)

# In a fresh interpreter: raise glibc's mmap threshold the way a first evaluation does
# (free one 2 MiB mmap'd block), then allocate 24 blocks of 1 MiB, which now come from the
# heap, each followed by a small block that stays, write them and free the 24: holes
# inside the heap, they stay in the process until release_free_memory. Prints the RSS
# (KiB) at each step.
_SCRIPT = r"""
import ctypes, ctypes.util
from peer.heap import release_free_memory

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4

libc.free(libc.malloc(2 << 20))
blocks, pins = [], []
for _ in range(24):
    blocks.append(libc.malloc(1 << 20))
    pins.append(libc.malloc(4096))
for b in blocks:
    ctypes.memset(b, 1, 1 << 20)
before = rss_kib()
for b in blocks:
    libc.free(b)
freed = rss_kib()
ok = release_free_memory()
after = rss_kib()
print(before, freed, after, ok)
"""


def test_release_returns_free_heap_blocks_to_the_os() -> None:
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, check=True)
    before, freed, after, ok = out.stdout.split()
    assert ok == "True"
    # free() alone keeps the 24 MiB (holes between blocks still in use) ...
    assert int(before) - int(freed) < 4 << 10
    # ... malloc_trim hands (almost) all of them back
    assert int(freed) - int(after) > 20 << 10
