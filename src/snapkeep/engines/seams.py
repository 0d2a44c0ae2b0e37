"""What the engines need of the repository: narrow protocols, checked by mypy at the call
sites in services (as restic's archiver takes an ``archiverRepo`` interface).

The engines never name ``Repository`` or ``SnapshotSession``: a dump or a mount walk
writes through a ``SnapshotWriter`` (in a backup, the snapshot session), a restore, an
export or a drill reads through a ``BlobSource`` (the repository). Both engines import
this module; it imports nothing of theirs, so they stay independent of each other.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from snapkeep.repository import BlobReader, BlobRef, BlobWriter


class BlobSource(Protocol):
    """What a restore or an export reads: a stored blob, every chunk hash-checked."""

    def open_blob(self, ref: BlobRef) -> BlobReader: ...


class BlobSink(Protocol):
    """What a dump writes through: a writer that chunks, compresses and stores one blob."""

    def blob_writer(self, level: int = ...) -> BlobWriter: ...


class PageSink(BlobSink, Protocol):
    """What a physical dump writes through: also blobs cut only on page boundaries, so
    a tablespace's unchanged pages deduplicate (``repository/pages.py``)."""

    def page_writer(self, page_size: int, level: int = ...) -> BlobWriter: ...


class SnapshotWriter(BlobSink, BlobSource, Protocol):
    """What a mount walk needs of the snapshot session: blobs written, and the parent
    snapshot's tree read through the same object (its files cache)."""


@runtime_checkable
class ReferenceRecorder(Protocol):
    """A writer that must be told of every blob a snapshot reuses without rewriting it (a
    snapshot session: it raises IntegrityError when one of the blob's chunks is gone)."""

    def add_ref(self, ref: BlobRef) -> None: ...


@runtime_checkable
class ChunkIndex(Protocol):
    """A writer that can say whether a chunk is stored (the repository itself)."""

    def has_chunk(self, cid: str) -> bool: ...


class ChunkNamer(Protocol):
    """What a digest of a directory needs: blob writers that name chunks, storing nothing."""

    def digest_writer(self) -> BlobWriter: ...


@runtime_checkable
class ChunkHasher(Protocol):
    """A repository that names chunks (its keyed hash): a restore proves an unchanged live
    file equal to the snapshot's by hashing it at the recorded chunk boundaries."""

    def chunk_id(self, data: bytes | memoryview) -> str: ...


class SegmentWrite(Protocol):
    """One archived binlog segment being written: its bytes, then its record."""

    def write(self, data: bytes | memoryview) -> None: ...
    def commit(self, fields: dict[str, Any]) -> Any: ...
    def abort(self) -> None: ...


class BinlogSink(Protocol):
    """Where the binlog follower archives (the repository's ``BinlogArchive``): the last
    record (to resume from), new segments, gaps."""

    def last(self) -> Any: ...
    def begin_segment(self, level: int = ...) -> SegmentWrite: ...
    def record_gap(self, fields: dict[str, Any]) -> Any: ...
