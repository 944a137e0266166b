"""Keep freed memory in the process, so that CPU loops do not fault their tensors in again.

A dream or render step frees and reallocates the same large tensors every step. glibc hands
blocks above its mmap threshold back to the kernel on free, so the next step takes a page fault
per 4 KiB page: on a 2-core CPU that is about a fifth of a render's CPU time, spent in the
kernel. Raising the thresholds keeps those blocks in the heap for reuse (measured on `vis`,
16 channels at 112 px: system time 4.4 s -> 0.9 s, wall time 8% less, peak memory 10% more).
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest: blocks up to this come from the heap
TRIM_THRESHOLD = 2**30  # free heap memory kept before any is handed back


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (the CLI calls it once); False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
