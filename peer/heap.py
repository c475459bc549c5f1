"""Hand the pages that a peer's C heap holds free back to the operating system.

glibc's ``malloc`` keeps freed memory in the process for reuse. Its threshold for serving
a large allocation with its own ``mmap`` (unmapped again on ``free``) starts at 128 KiB
and rises to the size of the largest such block freed, so after a first evaluation (a
LeNet forward pass over 128 images allocates blocks of ~1.8 MB) later blocks of that size
come from the heap and stay there when freed. A peer evaluates only every
``eval.every`` rounds, yet kept that working set for the rest of the run: +7.8 MiB per
LeNet peer after its first evaluation of 500 samples, 7.8 GiB at 1,024 peers
(BENCHMARKS.md section 8, *Memory an evaluation leaves behind*). ``malloc_trim(0)``
returns every whole free page of every arena (``madvise(MADV_DONTNEED)``), which the next
allocation faults in again.

The peer process (:mod:`peer.runtime`) calls :func:`release_free_memory` after its set-up
and after each round in which it evaluated, once its ``round_done`` is sent, while it would
wait for the next round anyway. It changes no computed value. After every round only with
``runtime.release_memory = "round"``: the training step's working set is reused each round,
and releasing it costs page faults in the next one. Where the C library has no
``malloc_trim`` (musl, macOS), nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

__all__ = ["release_free_memory"]


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):  # no C library found, or not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS; True if the C library could (glibc)."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
