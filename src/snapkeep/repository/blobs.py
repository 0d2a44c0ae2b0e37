"""Blobs: byte streams of any length, stored as a list of content-defined chunks.

A ``BlobRef`` is what a manifest keeps to find a stream again. A ``BlobWriter`` cuts its
stream with the repository's chunker (FastCDC), so the same bytes give the same chunks
however ``write()`` calls split them, and an edit only changes the chunks around it.
"""

from __future__ import annotations

import io
import mmap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from snapkeep.malloc import lazy_buffer
from snapkeep.repository.chunks import ZSTD_LEVEL


@dataclass(frozen=True)
class BlobRef:
    size: int
    chunks: tuple[tuple[str, int], ...]  # (chunk id, plaintext length)

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "chunks": [[c, n] for c, n in self.chunks]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlobRef:
        chunks = tuple((str(c), int(n)) for c, n in data["chunks"])
        return cls(size=int(data["size"]), chunks=chunks)


EMPTY_BLOB = BlobRef(0, ())


class Cutter(Protocol):
    """What a ``BlobWriter`` cuts its stream with: ``chunks.Chunker`` (FastCDC) or
    ``pages.PageChunker`` (page boundaries)."""

    def space(self) -> memoryview: ...
    def commit(self, n: int) -> Iterator[memoryview]: ...
    def feed(self, data: bytes | bytearray | memoryview) -> Iterator[memoryview]: ...
    def finish(self) -> Iterator[memoryview]: ...


class ChunkSink(Protocol):
    def store_chunk(self, data: bytes | memoryview, level: int = ...) -> str: ...


class ChunkSource(Protocol):
    def load_chunk(self, cid: str, raw_len: int | None = None) -> bytes: ...


class Scratch:
    """Three buffers reused for chunk after chunk (see ``BlobReader.iter_views``): one for
    a chunk's sealed bytes as read from its pack, one for it decrypted, one for it
    decompressed (zstd's output for each chunk was a fresh mapping: decompressing into
    one reused buffer cut a physical restore's file writing by a quarter).

    ``snapkeep.malloc`` makes every buffer of 128 KiB or more a fresh mapping that the
    kernel zeroes and faults in page by page: new megabyte-sized buffers per chunk cost
    more system time than decrypting them. One pair per thread, grown when needed, doesn't.
    """

    def __init__(self) -> None:
        self._bufs = [bytearray(), bytearray()]
        self._decoded: mmap.mmap | None = None

    def _take(self, which: int, n: int) -> memoryview:
        if len(self._bufs[which]) < n:
            self._bufs[which] = bytearray(max(n, 2 * len(self._bufs[which])))
        return memoryview(self._bufs[which])[:n]

    def sealed(self, n: int) -> memoryview:
        """``n`` bytes to read a sealed chunk into (overwritten by the next chunk)."""
        return self._take(0, n)

    def plain(self, n: int) -> memoryview:
        """``n`` bytes to decrypt a chunk into (overwritten by the next chunk)."""
        return self._take(1, n)

    def decoded(self, n: int) -> memoryview:
        """``n`` page-aligned bytes to decompress a chunk into (overwritten by the next)."""
        if self._decoded is None or len(self._decoded) < n:
            size = max(n, 2 * len(self._decoded) if self._decoded is not None else 0)
            self._decoded = lazy_buffer(size)
        return memoryview(self._decoded)[:n]


_scratch = threading.local()


def thread_scratch() -> Scratch:
    """This thread's ``Scratch``."""
    s: Scratch | None = getattr(_scratch, "s", None)
    if s is None:
        s = _scratch.s = Scratch()
    return s


class BlobWriter:
    """A write-only stream; ``close()`` returns its ``BlobRef``.

    One writer is not shared between threads; many writers may run in parallel.
    ``level`` is the zstd level of its chunks.
    """

    def __init__(self, sink: ChunkSink, chunker: Cutter, level: int = ZSTD_LEVEL) -> None:
        self._sink = sink
        self._chunker = chunker
        self._level = level
        self._chunks: list[tuple[str, int]] = []
        self._size = 0
        self._ref: BlobRef | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._ref is not None:
            raise ValueError("write to a closed BlobWriter")
        n = len(data)
        self._size += n
        for piece in self._chunker.feed(data):
            self._chunks.append((self._sink.store_chunk(piece, self._level), len(piece)))
        return n

    def write_from(self, read: Callable[[memoryview], int]) -> int:
        """Store what ``read`` writes at the start of the view it is given (the chunker's
        reused window: no buffer per read, e.g. ``os.preadv``) and returns the length of;
        that length (0: nothing, e.g. at the end of a file)."""
        if self._ref is not None:
            raise ValueError("write to a closed BlobWriter")
        with self._chunker.space() as room:
            n = read(room)
        self._size += n
        for piece in self._chunker.commit(n):
            self._chunks.append((self._sink.store_chunk(piece, self._level), len(piece)))
        return n

    def close(self) -> BlobRef:
        if self._ref is None:
            for piece in self._chunker.finish():
                self._chunks.append((self._sink.store_chunk(piece, self._level), len(piece)))
            self._ref = BlobRef(self._size, tuple(self._chunks))
        return self._ref

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()


class BlobReader(io.RawIOBase):
    """A read-only stream over a blob; each chunk is decrypted and hash-checked as read."""

    def __init__(self, repo: ChunkSource, ref: BlobRef) -> None:
        self._repo = repo
        self._ref = ref
        self._next = 0
        self._cur = memoryview(b"")

    def readable(self) -> bool:
        return True

    def _load(self, index: int) -> bytes:
        cid, length = self._ref.chunks[index]
        return self._repo.load_chunk(cid, length)

    def readinto(self, buf: Any) -> int:
        while not self._cur:
            if self._next >= len(self._ref.chunks):
                return 0
            self._cur = memoryview(self._load(self._next))
            self._next += 1
        n = min(len(buf), len(self._cur))
        buf[:n] = self._cur[:n]
        self._cur = self._cur[n:]
        return n

    def iter_views(self) -> Iterator[memoryview]:
        """The remaining plaintext chunk by chunk, each decrypted into this thread's
        ``Scratch``: a view is valid only until the next one is taken (write it out
        first). Every chunk is hash-checked as in ``iter_chunks``."""
        for piece in self._views(sparse=False):
            assert not isinstance(piece, int)
            yield piece

    def iter_sparse(self) -> Iterator[memoryview | int]:
        """``iter_views``, except that a chunk of only zeros comes as its length (an int),
        neither read nor decrypted: its id is the keyed hash of that many zero bytes
        (``zero_chunk_id``), which says what it holds. A file writer can then allocate
        that range instead of copying zeros into it (a tablespace's unused pages)."""
        return self._views(sparse=True)

    def _views(self, sparse: bool) -> Iterator[memoryview | int]:
        load = getattr(self._repo, "load_chunk_view", None)
        zero_id = getattr(self._repo, "zero_chunk_id", None) if sparse else None
        if load is None or self._cur:
            for chunk in self.iter_chunks():
                yield memoryview(chunk)
            return
        scratch = thread_scratch()
        while self._next < len(self._ref.chunks):
            cid, length = self._ref.chunks[self._next]
            self._next += 1
            yield length if zero_id is not None and cid == zero_id(length) \
                else load(cid, scratch)

    def iter_chunks(self) -> Iterator[bytes]:
        """The remaining plaintext chunk by chunk (no copying through ``readinto``)."""
        if self._cur:
            yield bytes(self._cur)
            self._cur = memoryview(b"")
        while self._next < len(self._ref.chunks):
            data = self._load(self._next)
            self._next += 1
            yield data
