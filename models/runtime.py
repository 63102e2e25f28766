"""Process-wide CPU settings that make the models run faster without changing what they compute.

:func:`reuse_freed_memory` keeps glibc's malloc from handing large freed blocks back to the
operating system. By default every tensor above 32 MB is its own ``mmap``: freed with ``munmap``
when the tensor dies and faulted in again, page by page, when the next one of that size is made;
many of these models' activations are that large. Served from the heap and kept there, the same
blocks are reused warm. The cost: the process's resident memory stays at its
high-water mark until it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["reuse_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h


def reuse_freed_memory() -> bool:
    """Serve all allocations from malloc's heap and keep freed memory for reuse (up to 2 GB of
    free space at the heap's top before any is trimmed). Returns False, changing nothing, where
    the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
