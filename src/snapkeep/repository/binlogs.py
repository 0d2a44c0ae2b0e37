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
document naming missing data.

Retention (``retention``, used by prune): the records of a stream before the oldest
restorable snapshot's binlog position go — the segment holding that position and the
segments from the start of its file (offset 4, the Format_description a replay needs) stay,
and everything after. Prune deletes them oldest first under its exclusive lock, so the
archive is always a suffix: its first ``seq`` may be greater than 1.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from snapkeep.errors import BusyError, IntegrityError, NotFoundError, RepositoryError
from snapkeep.processes import pid_alive
from snapkeep.progress import Reporter
from snapkeep.repository.blobs import BlobRef, BlobWriter
from snapkeep.repository.chunks import ZSTD_LEVEL
from snapkeep.repository.crypto import Keys
from snapkeep.repository.manifest import SnapshotManifest, open_doc, seal_doc
from snapkeep.repository.report import Report
from snapkeep.repository.session import SnapshotSession
from snapkeep.storage import Backend

PREFIX = "binlogs/"
VERSION = 1
FILE_START = 4  # a binlog file's first event (after its magic): its Format_description


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
    def start(self) -> int:
        return int(self.data["start"])

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

    def store(self, record: BinlogRecord) -> BinlogRecord:
        """Write ``record`` as it is, at its own ``seq`` (a replica's copy of a primary's
        record, sealed under this repository's keys); its data must be stored already."""
        key = segment_key(self.stream, record.seq)
        if self.repo.backend.exists(key):
            raise RepositoryError(f"binlog record {key} already exists in the repository at "
                                  f"{self.repo.backend.describe()}")
        self.repo.backend.put(key, seal_doc(self.repo.keys, record.data, _ad(key)))
        self._last_seq = max(self._last_seq or 0, record.seq)
        return record

    def record_gap(self, fields: dict[str, Any]) -> BinlogRecord:
        return self.put({**fields, "kind": "gap"})

    def begin_segment(self, level: int = ZSTD_LEVEL) -> SegmentWriter:
        return SegmentWriter(self, level)


# -- one follower per stream, across hosts --------------------------------------------------

LEASE_REFRESH_S = 10.0
LEASE_STALE_S = 60.0  # a lease not refreshed for this long is a dead follower's
LEASE_PREFIX = "lease-"


class FollowerLease:
    """Which follower archives a stream: a plaintext object
    ``binlogs/<stream>/lease-<id>`` (``{"host", "pid", "since", "time"}``), rewritten every
    ``LEASE_REFRESH_S`` while held. Written, then the stream's other leases listed: a live
    one refuses this follower (BusyError). A lease is stale — removed by whoever meets it —
    when its host is this host and its pid is not running, or when it was not refreshed
    for ``LEASE_STALE_S``. Followers on one host are kept apart by a ``flock`` first; this
    keeps apart those on several hosts (servers and workers sharing a repository)."""

    def __init__(self, repo: Documents, stream: str,
                 log: Callable[[str], None] | None = None) -> None:
        self.backend = repo.backend
        self.stream = stream
        self.key = f"{PREFIX}{stream}/{LEASE_PREFIX}{secrets.token_hex(8)}"
        self._log = log or (lambda _m: None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        now = time.time()
        self.info = {"host": socket.gethostname(), "pid": os.getpid(), "since": now,
                     "time": now}

    def _write(self) -> None:
        self.info["time"] = time.time()
        self.backend.put(self.key, json.dumps(self.info, sort_keys=True).encode())

    def _others(self) -> list[dict[str, Any]]:
        out = []
        for key, info in _leases(self.backend, self.stream):
            if key == self.key:
                continue
            if _lease_stale(info):
                self._log(f"removing the stale follower lease {key} (pid {info.get('pid')} "
                          f"on {info.get('host')})")
                self.backend.delete(key)
                continue
            out.append(info)
        return out

    def acquire(self) -> FollowerLease:
        self._write()
        others = self._others()
        if others:
            self.backend.delete(self.key)
            o = others[0]
            since = time.strftime("%Y-%m-%d %H:%M:%S",
                                  time.localtime(float(o.get("since", 0))))
            raise BusyError(f"a binlog follower of {self.stream} runs on {o.get('host')} "
                            f"(pid {o.get('pid')}, since {since}): one follower per "
                            "environment; stop it, or start this one elsewhere with "
                            "--no-binlog-follow")
        self._thread = threading.Thread(target=self._refresh, daemon=True,
                                        name=f"binlog-lease-{self.stream}")
        self._thread.start()
        return self

    def _refresh(self) -> None:
        while not self._stop.wait(LEASE_REFRESH_S):
            try:
                self._write()
            except RepositoryError as e:  # keep trying; unrefreshed, it goes stale
                self._log(f"cannot refresh the follower lease {self.key}: {e}")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.backend.delete(self.key)


def follower_running(repo: Documents, stream: str) -> bool:
    """Whether a follower holds a live lease on ``stream`` (on any host)."""
    return any(not _lease_stale(info) for _key, info in _leases(repo.backend, stream))


def _leases(backend: Backend, stream: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every follower lease of ``stream``: its key and what it says (``{}`` when
    unreadable); one released while listed is left out."""
    for key in backend.list(f"{PREFIX}{stream}/"):
        if not key.rsplit("/", 1)[-1].startswith(LEASE_PREFIX):
            continue
        try:
            info = json.loads(backend.get(key))
        except NotFoundError:
            continue  # released meanwhile
        except ValueError:
            info = {}
        yield key, info


def _lease_stale(info: dict[str, Any]) -> bool:
    try:
        pid, written = int(info.get("pid", 0)), float(info.get("time", 0))
    except (TypeError, ValueError):
        return True  # unreadable: nothing can refresh it as it is
    if info.get("host") == socket.gethostname() and not pid_alive(pid):
        return True
    return time.time() - written > LEASE_STALE_S


def archived_chunks(repo: Documents, records: Iterable[BinlogRecord] | None = None
                    ) -> set[str]:
    """Every chunk the archived segments (``records``, default: all) need."""
    out: set[str] = set()
    if records is None:
        records = (_read(repo, key) for key in repo.backend.list(PREFIX)
                   if key.rsplit("/", 1)[-1].isdigit())
    for record in records:
        if record.blob is not None:
            out.update(c for c, _n in record.blob.chunks)
    return out


def streams(repo: Documents) -> list[str]:
    """The streams (environments) that have archived records."""
    return sorted({key[len(PREFIX):].split("/", 1)[0] for key in repo.backend.list(PREFIX)
                   if key.rsplit("/", 1)[-1].isdigit()})


def stream_records(repo: Documents, stream: str) -> list[BinlogRecord]:
    """A stream's records in archive order (reading needs no writer's repository)."""
    seqs = sorted(int(n) for key in repo.backend.list(f"{PREFIX}{stream}/")
                  if (n := key.rsplit("/", 1)[-1]).isdigit())
    return [_read(repo, segment_key(stream, seq)) for seq in seqs]


# -- retention ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    """A snapshot's binlog position: replay from it needs the archive from there on."""

    snapshot: str
    file: str
    position: int
    created: datetime | None


def _utc(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def bases_of(manifest: SnapshotManifest, now: datetime) -> list[Base]:
    """The binlog positions a restorable snapshot records (its MySQL descriptions'
    ``binlog``, docs/pitr.md); none for an expired one (past ``expires_at``)."""
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now
    expires = _utc(manifest.expires_at)
    if expires is not None and now >= expires:
        return []
    out = []
    for desc in manifest.services.values():
        pos = desc.get("binlog") if isinstance(desc, dict) else None
        if isinstance(pos, dict) and pos.get("file") and pos.get("position") is not None:
            out.append(Base(manifest.id, str(pos["file"]), int(pos["position"]),
                            _utc(manifest.created_at)))
    return out


def containing(records: Sequence[BinlogRecord], base: Base) -> int | None:
    """The index in ``records`` of the segment holding ``base``'s position, or None.

    File names repeat after a ``RESET MASTER`` (docs/pitr.md), so a position may match a
    segment of each era: the latest whose first event is not newer than the snapshot is
    the one (a later era's events were written after the snapshot); without times, the
    earliest match (keeping more is safe)."""
    found = [i for i, r in enumerate(records)
             if r.kind == "segment" and r.file == base.file
             and r.start <= base.position <= r.end]
    if not found:
        return None
    if base.created is not None:
        fitting = [i for i in found
                   if (t := _utc(records[i].data.get("first_time"))) is None
                   or t <= base.created]
        if fitting:
            return fitting[-1]
    return found[0]


def _file_start(records: Sequence[BinlogRecord], i: int) -> int:
    """Back from segment ``i`` to the segment where its file starts (or to where the
    archive's run of that file starts: after a gap, or at the archive's first record)."""
    while i > 0 and records[i].start > FILE_START:
        prev, cur = records[i - 1], records[i]
        if prev.kind != "segment" or prev.file != cur.file or prev.end != cur.start:
            break
        i -= 1
    return i


@dataclass
class Retention:
    """What retention drops of one stream: ``drop`` (oldest first), and why, or why not."""

    stream: str
    drop: list[BinlogRecord]
    kept: int
    reason: str


def retention(stream: str, records: Sequence[BinlogRecord], bases: Sequence[Base]
              ) -> Retention:
    """The records before the oldest base's file start (see the module doc). A base whose
    position is not in the archive (not archived yet, or lost in a gap) is passed over;
    with no base found, every record stays."""
    firsts = []
    for base in bases:
        i = containing(records, base)
        if i is not None:
            firsts.append((_file_start(records, i), base))
    if not firsts:
        why = ("no restorable snapshot of it records a binlog position" if not bases else
               "no restorable snapshot's binlog position is in the archive yet")
        return Retention(stream, [], len(records), f"all kept: {why}")
    first, base = min(firsts, key=lambda x: x[0])
    kept = records[first]
    return Retention(stream, list(records[:first]), len(records) - first,
                     f"before the oldest base, snapshot {base.snapshot} at "
                     f"{base.file}:{base.position} (kept from {kept.file}:{kept.start}, "
                     f"seq {kept.seq})")


def check_archived(repo: Documents, chunk_packs: dict[str, str], present: set[str],
                   report: Report, reporter: Reporter) -> int:
    """``repository:check``'s part: every record readable, every chunk of a segment in the
    index and its pack stored, and each stream's records consecutive (retention deletes
    only from the front). The number of records."""
    n = 0
    last: dict[str, int] = {}
    for key in sorted(repo.backend.list(PREFIX)):
        stream, _sep, name = key[len(PREFIX):].rpartition("/")
        if not name.isdigit():
            continue
        n += 1
        seq = int(name)
        try:
            record: BinlogRecord | None = _read(repo, key)
        except (IntegrityError, NotFoundError) as e:
            report.problem(key, str(e), reporter)
            record = None
        # a replica's gap over records its primary pruned before they were copied names
        # the record it follows
        if stream in last and seq != last[stream] + 1 and not (
                record is not None and record.kind == "gap"
                and record.data.get("follows") == last[stream]):
            gone = (f"record {seq - 1} is" if seq - 1 == last[stream] + 1
                    else f"records {last[stream] + 1} to {seq - 1} are")
            report.problem(key, f"binlog {gone} missing from {stream}'s archive: it has a "
                           "hole (prune only deletes from its start)", reporter)
        last[stream] = seq
        if record is None:
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
