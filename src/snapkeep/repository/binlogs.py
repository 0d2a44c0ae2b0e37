"""Archived binary-log segments: a second kind of sealed document beside snapshot manifests.

Key ``binlogs/<stream>/<seq>`` (``seq`` 12 digits, from 1, in archive order; ``stream``
is the environment's name). Each document is sealed like a manifest (associated data
``snapkeep binlog <key>``) and holds one record (docs/pitr.md, Repository format)::

    {"version": 1, "kind": "segment", "seq", "file", "start", "end",
     "first_time", "last_time", "gtid_first", "gtid_last", "events", "blob": BlobRef json,
     "archived_at"}
    {"version": 1, "kind": "gap", "seq", "file", "start", "next_file", "archived_at"}

A segment's blob holds the bytes of the server's binlog ``file`` from offset ``start`` to
``end`` exactly (whole events, checksums included); segments of one file follow each other
without a hole. A gap says the archive could not continue after ``file``:``start`` (the
server had purged what followed) and went on at the start of ``next_file``.

Durability: a segment's chunks are stored through a ``SnapshotSession`` (its shared lock
keeps prune out while they are written), flushed — packs, then index — and only then is
the document written, so a killed writer leaves at most unreferenced packs, never a
document naming missing data. Prune counts every segment's chunks as live.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from snapkeep.errors import IntegrityError, NotFoundError, RepositoryError
from snapkeep.progress import Reporter
from snapkeep.repository.blobs import BlobRef, BlobWriter
from snapkeep.repository.chunks import ZSTD_LEVEL
from snapkeep.repository.crypto import Keys
from snapkeep.repository.manifest import open_doc, seal_doc
from snapkeep.repository.report import Report
from snapkeep.repository.session import SnapshotSession
from snapkeep.storage import Backend

PREFIX = "binlogs/"
VERSION = 1


class Documents(Protocol):
    """What reading the records needs (prune's view of the repository has it)."""

    backend: Backend
    keys: Keys


class ArchiveRepository(Documents, Protocol):
    def begin_snapshot(self, *, lock: bool = True, wait: float = 0.0) -> SnapshotSession: ...


def segment_key(stream: str, seq: int) -> str:
    return f"{PREFIX}{stream}/{seq:012d}"


def _ad(key: str) -> bytes:
    return b"snapkeep binlog " + key.encode()


@dataclass(frozen=True)
class BinlogRecord:
    """One archived segment (``kind == "segment"``) or gap (``"gap"``): see the module."""

    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.data["kind"])

    @property
    def seq(self) -> int:
        return int(self.data["seq"])

    @property
    def file(self) -> str:
        return str(self.data["file"])

    @property
    def end(self) -> int:
        """Where the archive goes on in ``file`` (a segment's end)."""
        return int(self.data["end"])

    @property
    def blob(self) -> BlobRef | None:
        raw = self.data.get("blob")
        return BlobRef.from_json(raw) if raw else None


class SegmentWriter:
    """The bytes of one segment being archived: ``write`` them, then ``commit`` its
    description (or ``abort``). Holds a shared repository lock until then."""

    def __init__(self, archive: BinlogArchive, level: int) -> None:
        self._archive = archive
        self._session = archive.repo.begin_snapshot(wait=60.0)
        self._writer: BlobWriter = self._session.blob_writer(level)

    def write(self, data: bytes | memoryview) -> None:
        self._writer.write(data)

    def commit(self, fields: dict[str, Any]) -> BinlogRecord:
        """Flush the segment's chunks (packs, then index), then write its document."""
        ref = self._writer.close()
        try:
            record = self._session.commit_with(
                lambda: self._archive.put({**fields, "kind": "segment",
                                           "blob": ref.to_json()}))
        finally:
            self._session.close()
        assert isinstance(record, BinlogRecord)
        return record

    def abort(self) -> None:
        self._session.close()


class BinlogArchive:
    """The archived segments and gaps of one stream (an environment's server)."""

    def __init__(self, repo: ArchiveRepository, stream: str) -> None:
        if not stream or "/" in stream or stream.startswith("."):
            raise RepositoryError(f"invalid binlog stream name {stream!r}")
        self.repo = repo
        self.stream = stream
        self._last_seq: int | None = None  # known after the first listing (this writer's)

    def _seqs(self) -> list[int]:
        out = []
        for key in self.repo.backend.list(f"{PREFIX}{self.stream}/"):
            name = key.rsplit("/", 1)[-1]
            if name.isdigit():
                out.append(int(name))
        return sorted(out)

    def seqs(self) -> list[int]:
        """The records' ``seq`` numbers, in order (a listing; nothing read)."""
        return self._seqs()

    def load(self, seq: int) -> BinlogRecord:
        return _read(self.repo, segment_key(self.stream, seq))

    def records(self) -> Iterator[BinlogRecord]:
        """Every segment and gap, in archive order."""
        for seq in self._seqs():
            yield self.load(seq)

    def last(self) -> BinlogRecord | None:
        seqs = self._seqs()
        return self.load(seqs[-1]) if seqs else None

    def put(self, fields: dict[str, Any]) -> BinlogRecord:
        """Write the next record (its ``seq`` and ``archived_at`` filled in)."""
        if self._last_seq is None:
            seqs = self._seqs()
            self._last_seq = seqs[-1] if seqs else 0
        seq = self._last_seq + 1
        data = {**fields, "version": VERSION, "seq": seq,
                "archived_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        key = segment_key(self.stream, seq)
        if self.repo.backend.exists(key):
            raise RepositoryError(f"binlog record {key} already exists: is another follower "
                                  f"archiving {self.stream}?")
        self.repo.backend.put(key, seal_doc(self.repo.keys, data, _ad(key)))
        self._last_seq = seq
        return BinlogRecord(data)

    def record_gap(self, fields: dict[str, Any]) -> BinlogRecord:
        return self.put({**fields, "kind": "gap"})

    def begin_segment(self, level: int = ZSTD_LEVEL) -> SegmentWriter:
        return SegmentWriter(self, level)


def archived_chunks(repo: Documents) -> set[str]:
    """Every chunk an archived segment needs (prune keeps them)."""
    out: set[str] = set()
    for key in repo.backend.list(PREFIX):
        if not key.rsplit("/", 1)[-1].isdigit():
            continue
        record = _read(repo, key)
        if record.blob is not None:
            out.update(c for c, _n in record.blob.chunks)
    return out


def check_archived(repo: Documents, chunk_packs: dict[str, str], present: set[str],
                   report: Report, reporter: Reporter) -> int:
    """``repository:check``'s part: every record readable, every chunk of a segment in the
    index and its pack stored. The number of records."""
    n = 0
    for key in sorted(repo.backend.list(PREFIX)):
        if not key.rsplit("/", 1)[-1].isdigit():
            continue
        n += 1
        try:
            record = _read(repo, key)
        except (IntegrityError, NotFoundError) as e:
            report.problem(key, str(e), reporter)
            continue
        for cid, _n in record.blob.chunks if record.blob else ():
            pack = chunk_packs.get(cid)
            if pack is None or pack not in present:
                report.problem(key, f"chunk {cid} of this binlog segment is "
                               + ("in no index" if pack is None else f"in missing pack {pack}"),
                               reporter)
                break
    return n


def _read(repo: Documents, key: str) -> BinlogRecord:
    try:
        raw = repo.backend.get(key)
    except NotFoundError:
        raise NotFoundError(f"binlog record {key} is not in the repository") from None
    try:
        return BinlogRecord(open_doc(repo.keys, raw, _ad(key)))
    except ValueError as e:
        raise IntegrityError(f"binlog record {key} is damaged: {e}") from e
