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

from snapkeep.repository.chunks import Chunker, WindowCutter

PAGE_SIZE = 16 * 1024  # innodb_page_size's default; a snapshot records the server's own
AVG_PAGES = 16  # 256 KiB chunks on average
MIN_PAGES = 4
MAX_PAGES = 64
_PROBE = 64  # bytes of a page's start hashed (the FIL header: checksum, offset, LSN …)
_TRAILER = 8  # and of its end (the trailer: old checksum, low LSN)


class PageChunker(WindowCutter):
    """The ``Chunker`` interface ``BlobWriter`` uses, cutting only at multiples of
    ``page_size``. Its window (``chunks.WindowCutter``) is cut at every commit: a file read
    straight into it goes to the store as views of it, with no copy of the pages but the
    move of an unfinished chunk to the window's start."""

    def __init__(self, seed: int, page_size: int = PAGE_SIZE) -> None:
        # a window of at least twice the largest chunk: after a cut less than one chunk
        # (plus a partial page) is left, so half the window is always free
        super().__init__(max(Chunker.WINDOW, 2 * (MAX_PAGES + 1) * page_size))
        self._key = (seed & ((1 << 64) - 1)).to_bytes(8, "little")
        self._page = page_size
        self._mask = AVG_PAGES - 1
        self._scanned = 0  # pages at the window's start judged (none of them a cut)

    def _is_cut(self, page: memoryview) -> bool:
        h = hashlib.blake2b(page[:_PROBE], digest_size=8, key=self._key)
        h.update(page[-_TRAILER:])
        return int.from_bytes(h.digest(), "little") & self._mask == 0

    def _cut_now(self) -> bool:
        return True

    def _cut(self, final: bool) -> Iterator[memoryview]:
        assert self._window is not None
        view, page = memoryview(self._window), self._page
        start, judged = 0, self._scanned
        while True:
            pages = (self._pending - start) // page
            cut = 0
            while judged < pages:
                judged += 1
                if judged >= MAX_PAGES or (judged >= MIN_PAGES and self._is_cut(
                        view[start + (judged - 1) * page:start + judged * page])):
                    cut = judged
                    break
            if not cut:
                break
            yield view[start:start + cut * page]
            start, judged = start + cut * page, 0
        if final:  # the end of the stream: what is left is the last chunk
            if start < self._pending:
                yield view[start:self._pending]
            self._pending = self._scanned = 0
            return
        rest = self._pending - start
        if start:  # the unfinished chunk (under MAX_PAGES) to the window's start
            self._window.move(0, start, rest)  # memmove: the two may overlap
        self._pending, self._scanned = rest, judged
