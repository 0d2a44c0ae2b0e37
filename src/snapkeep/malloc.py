"""Keeping a long backup's memory flat, and buffers that cost only what is written.

glibc raises its mmap threshold every time a large block is freed, so after a while the
dump's megabyte-sized buffers (fetch batches, chunker windows, pack buffers) come from
the heap, fragment it and are never returned: peak RSS then grows with the size of the
database. A fixed threshold keeps every block over 128 KiB in its own mapping, returned
to the system when freed (measured: 158 -> 124 MiB on a 236 MiB shop).
"""

from __future__ import annotations

import ctypes
import mmap

M_MMAP_THRESHOLD = -3
THRESHOLD = 128 * 1024


def bound_heap_growth() -> bool:
    """Fix glibc's mmap threshold; False where there is no glibc (nothing to do)."""
    try:
        libc = ctypes.CDLL("libc.so.6")  # by name: find_library would spawn ldconfig
        return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD))
    except (OSError, AttributeError):
        return False


def lazy_buffer(size: int) -> mmap.mmap:
    """A writable, zero-filled buffer of ``size`` bytes whose pages are mapped in only when
    first written (``bytearray(size)`` writes them all at once: a pack buffer with room to
    spare would cost its full size in RSS). For long-lived buffers that are reused."""
    return mmap.mmap(-1, size)
