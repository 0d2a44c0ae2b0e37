"""Chunks cut on page boundaries, for files made of fixed-size pages (InnoDB ``.ibd``).

FastCDC cuts anywhere in the byte stream; a tablespace changes a page at a time, so a
cut inside a page ties two neighbouring pages into one chunk for no gain. ``PageChunker``
cuts only after a page, content-defined *at page granularity*: after a page whose keyed
hash has its low bits zero (on average every ``AVG_PAGES`` pages), never before
``MIN_PAGES`` nor after ``MAX_PAGES``. The hash reads a page's header and trailer only:
InnoDB writes the page's checksum and LSN there, so any change to a page changes them,
and an unchanged page keeps its boundary decision — a changed page moves at most the
one boundary after it, and the chunks of every unchanged run deduplicate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

PAGE_SIZE = 16 * 1024  # innodb_page_size's default; a snapshot records the server's own
AVG_PAGES = 16  # 256 KiB chunks on average
MIN_PAGES = 4
MAX_PAGES = 64
_PROBE = 64  # bytes of a page's start hashed (the FIL header: checksum, offset, LSN …)
_TRAILER = 8  # and of its end (the trailer: old checksum, low LSN)


class PageChunker:
    """The ``Chunker`` interface ``BlobWriter`` uses (``feed``/``finish``; ``space`` and
    ``commit`` as a plain buffer), cutting only at multiples of ``page_size``."""

    def __init__(self, seed: int, page_size: int = PAGE_SIZE) -> None:
        self._key = (seed & ((1 << 64) - 1)).to_bytes(8, "little")
        self._page = page_size
        self._buf = bytearray()
        self._mask = AVG_PAGES - 1
        self._scanned = 0  # pages of _buf already judged (none of them a cut)

    def _is_cut(self, page: memoryview) -> bool:
        h = hashlib.blake2b(page[:_PROBE], digest_size=8, key=self._key)
        h.update(page[-_TRAILER:])
        return int.from_bytes(h.digest(), "little") & self._mask == 0

    def space(self) -> memoryview:
        return memoryview(bytearray(MAX_PAGES * self._page))

    def commit(self, n: int) -> Iterator[memoryview]:  # pragma: no cover - write() only
        raise NotImplementedError("PageChunker takes its bytes through feed()")

    def feed(self, data: bytes | bytearray | memoryview) -> Iterator[memoryview]:
        self._buf += data
        page = self._page
        while True:
            pages = len(self._buf) // page
            cut = 0
            i = self._scanned
            while i < pages:
                i += 1
                if i >= MAX_PAGES or (i >= MIN_PAGES and self._is_cut(
                        memoryview(self._buf)[(i - 1) * page:i * page])):
                    cut = i
                    break
            if not cut:
                self._scanned = pages
                return
            chunk = bytes(self._buf[:cut * page])
            del self._buf[:cut * page]
            self._scanned = 0
            yield memoryview(chunk)

    def finish(self) -> Iterator[memoryview]:
        if self._buf:  # a tail shorter than a page (never, for a whole tablespace)
            chunk, self._buf = bytes(self._buf), bytearray()
            self._scanned = 0
            yield memoryview(chunk)
