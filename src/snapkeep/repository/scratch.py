"""Blobs kept for a moment beside a repository, never in it: what a restore or an export
converts on the way (the rows of a snapshot taken as pages, ``docs/physical.md``).

A ``ScratchBlobs`` stores each chunk as a zstd file in its directory, named by its
BLAKE2b hash with the prefix ``scratch-`` (no repository chunk id has it), and reads it
back hash-checked. ``open_blob`` serves a blob of either kind: its own chunks from the
directory, any other through the repository it stands beside — so a description whose
parts mix both reads through one ``BlobSource``. Removing the directory removes them all.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

import zstandard

from snapkeep.errors import IntegrityError
from snapkeep.repository.blobs import BlobReader, BlobRef, BlobWriter
from snapkeep.repository.chunks import CDC_AVG, CDC_MAX, CDC_MIN, ZSTD_LEVEL, Chunker

PREFIX = "scratch-"


class _Source(Protocol):
    def open_blob(self, ref: BlobRef) -> BlobReader: ...


class ScratchBlobs:
    """Blob writer and reader over a directory, in front of ``behind`` (a repository)."""

    def __init__(self, directory: Path, behind: _Source) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._behind = behind
        self._params = {"avg": CDC_AVG, "min": CDC_MIN, "max": CDC_MAX}

    def store_chunk(self, data: bytes | memoryview, level: int = ZSTD_LEVEL) -> str:
        cid = PREFIX + hashlib.blake2b(data, digest_size=20).hexdigest()
        path = self.directory / cid
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(zstandard.ZstdCompressor(level=1).compress(bytes(data)))
            os.replace(tmp, path)
        return cid

    def load_chunk(self, cid: str, raw_len: int | None = None) -> bytes:
        data = zstandard.ZstdDecompressor().decompress(
            (self.directory / cid).read_bytes(), max_output_size=raw_len or CDC_MAX)
        if PREFIX + hashlib.blake2b(data, digest_size=20).hexdigest() != cid:
            raise IntegrityError(f"scratch chunk {cid} in {self.directory} does not match "
                                 "its hash")
        return data

    def blob_writer(self, level: int = ZSTD_LEVEL) -> BlobWriter:
        return BlobWriter(self, Chunker(self._params, 0), level)

    def open_blob(self, ref: BlobRef) -> BlobReader:
        if ref.chunks and ref.chunks[0][0].startswith(PREFIX):
            return BlobReader(self, ref)
        return self._behind.open_blob(ref)
