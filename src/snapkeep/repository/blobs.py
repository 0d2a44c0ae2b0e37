"""Blobs: byte streams of any length, stored as a list of chunks.

A ``BlobRef`` is what a manifest keeps to find a stream again. Writers cut the
stream into fixed-size chunks (content-defined chunking replaces this in #3 without
changing the ``BlobRef`` shape).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snapkeep.repository.repository import Repository

CHUNK_SIZE = 1 << 20


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


@dataclass
class BlobWriter:
    """A write-only stream; ``close()`` returns its ``BlobRef``. Not shared between threads."""

    repo: Repository
    _buf: bytearray = field(default_factory=bytearray)
    _chunks: list[tuple[str, int]] = field(default_factory=list)
    _size: int = 0
    _ref: BlobRef | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buf += data
        n = len(data)
        self._size += n
        while len(self._buf) >= CHUNK_SIZE:
            self._flush(bytes(self._buf[:CHUNK_SIZE]))
            del self._buf[:CHUNK_SIZE]
        return n

    def _flush(self, piece: bytes) -> None:
        self._chunks.append((self.repo.store_chunk(piece), len(piece)))

    def close(self) -> BlobRef:
        if self._ref is None:
            if self._buf:
                self._flush(bytes(self._buf))
                self._buf.clear()
            self._ref = BlobRef(self._size, tuple(self._chunks))
        return self._ref

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()


class BlobReader(io.RawIOBase):
    """A read-only stream over a blob; each chunk is hash-checked as it is read."""

    def __init__(self, repo: Repository, ref: BlobRef) -> None:
        self._repo = repo
        self._ref = ref
        self._next = 0
        self._cur = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        while not self._cur:
            if self._next >= len(self._ref.chunks):
                return 0
            cid, _ = self._ref.chunks[self._next]
            self._next += 1
            self._cur = memoryview(self._repo.load_chunk(cid))
        n = min(len(buf), len(self._cur))
        buf[:n] = self._cur[:n]
        self._cur = self._cur[n:]
        return n

    def iter_chunks(self):
        """The remaining plaintext chunk by chunk (no copying through ``readinto``)."""
        if self._cur:
            yield bytes(self._cur)
            self._cur = memoryview(b"")
        while self._next < len(self._ref.chunks):
            cid, _ = self._ref.chunks[self._next]
            self._next += 1
            yield self._repo.load_chunk(cid)
