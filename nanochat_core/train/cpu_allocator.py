"""Keep freed CPU memory in the process instead of handing it back to the kernel after every step.

glibc serves allocations above 32 MB (a d4 model's logits are 134 MB) with a fresh mmap and unmaps
them on free, so every training step pays the kernel to fault in and zero those pages again. On
this project's 2-core machines that was a third of a d4 step (3.32 s -> 2.24 s with the mallopt
below; see benchmarks/bench_base_train.py). Training allocates the same buffers every step, so
keeping them costs no more memory than the step's peak.
"""
from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_MAX = -4
_KEEP_BYTES = 2**31 - 1  # the largest value mallopt's int takes: never trim the heap in practice


def keep_freed_memory() -> bool:
    """Serve large blocks from the heap and keep them there; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))
