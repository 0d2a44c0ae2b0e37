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
import mmap
from collections.abc import Iterator

from snapkeep.repository.chunks import Chunker, windows

PAGE_SIZE = 16 * 1024  # innodb_page_size's default; a snapshot records the server's own
AVG_PAGES = 16  # 256 KiB chunks on average
MIN_PAGES = 4
MAX_PAGES = 64
_PROBE = 64  # bytes of a page's start hashed (the FIL header: checksum, offset, LSN …)
_TRAILER = 8  # and of its end (the trailer: old checksum, low LSN)


class PageChunker:
    """The ``Chunker`` interface ``BlobWriter`` uses, cutting only at multiples of
    ``page_size``. Like ``chunks.Chunker`` it gathers the stream in a reused window
    (``space``/``commit``: a file is read straight into it) and yields its chunks as views
    of that window, each valid until the generator resumes: no copy of the pages on their
    way to the store but the move of an unfinished chunk to the window's start."""

    def __init__(self, seed: int, page_size: int = PAGE_SIZE) -> None:
        self._key = (seed & ((1 << 64) - 1)).to_bytes(8, "little")
        self._page = page_size
        self._mask = AVG_PAGES - 1
        # a window of at least twice the largest chunk: after a cut less than one chunk
        # (plus a partial page) is left, so half the window is always free
        self._size = max(Chunker.WINDOW, 2 * (MAX_PAGES + 1) * page_size)
        self._window: mmap.mmap | None = None
        self._pending = 0  # bytes of the window filled
        self._scanned = 0  # pages at the window's start judged (none of them a cut)

    def _is_cut(self, page: memoryview) -> bool:
        h = hashlib.blake2b(page[:_PROBE], digest_size=8, key=self._key)
        h.update(page[-_TRAILER:])
        return int.from_bytes(h.digest(), "little") & self._mask == 0

    def space(self) -> memoryview:
        """The free part of the window (never empty): write up to its length into it,
        then ``commit`` how much was written."""
        if self._window is None:
            self._window = windows.take(self._size)
        return memoryview(self._window)[self._pending:]

    def commit(self, n: int) -> Iterator[memoryview]:
        """``n`` bytes were written at the start of ``space()``; the chunks now final."""
        assert self._window is not None and 0 <= n <= len(self._window) - self._pending
        self._pending += n
        yield from self._cut(final=False)

    def feed(self, data: bytes | bytearray | memoryview) -> Iterator[memoryview]:
        view = memoryview(data).cast("B")
        while view:
            room = self.space()
            n = min(len(room), len(view))
            room[:n] = view[:n]
            view = view[n:]
            yield from self.commit(n)

    def finish(self) -> Iterator[memoryview]:
        if self._pending:
            yield from self._cut(final=True)
        if self._window is not None:  # every chunk of it has been consumed: reuse it
            window, self._window = self._window, None
            windows.give(window)

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
