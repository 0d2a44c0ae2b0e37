"""Copying a snapshot from a repository to its replica (``Repository.init_replica``).

The replica names and cuts chunks as its primary does, so a snapshot copies chunk by
chunk: every chunk its reference list names that the replica lacks is read from the
primary (decrypted, authenticated by its AEAD tag), re-encrypted as it was encoded
(compressed or not) under the replica's key into the replica's packs. Trees and
descriptions hold chunk ids, which stay valid, so the manifest copies as it is (its
reference list and added bytes rewritten by the replica's session).

Order: packs and index files (flushed every ``FLUSH_BYTES`` or less, so a copy killed
half-way leaves indexed packs the next copy reuses), then the check — each chunk this copy wrote is
read back from the replica's storage and hash-checked, each chunk it reused must be in a
pack the replica's storage lists — then the manifest last: verified before listed.

``copy_binlogs`` copies a stream's archived binlog records the same way: their segments'
chunks first (sent, flushed, read back), then the records at the primary's keys.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from snapkeep.errors import IntegrityError, RepositoryError
from snapkeep.faults import crash_point
from snapkeep.progress import NullReporter, Reporter
from snapkeep.repository import packs
from snapkeep.repository.binlogs import VERSION, BinlogArchive, BinlogRecord

if TYPE_CHECKING:
    from snapkeep.repository.index import Location
    from snapkeep.repository.repository import Repository
    from snapkeep.repository.session import SnapshotSession

# Plaintext copied between two index files (what a killed copy can lose): at most 64 MiB,
# a sixteenth of the copy for smaller ones, never under 4 MiB (each flush cuts a pack).
FLUSH_BYTES = 64 * 1024 * 1024
FLUSH_MIN = 4 * 1024 * 1024
# Chunks decrypted, hash-checked and re-sealed at once (AES, zstd and BLAKE3 release the
# GIL), in batches between which a cancel is seen and a flush may come.
THREADS = min(4, os.cpu_count() or 1)
BATCH = 16
# Binlog records copied per session: their chunks sent and flushed, then the records.
RECORD_BATCH = 256


@dataclass(frozen=True)
class CopyResult:
    snapshot_id: str
    copied: bool  # False: the replica held it already
    chunks: int = 0  # chunks the snapshot references
    chunks_sent: int = 0  # of those, written to the replica by this copy
    bytes_sent: int = 0  # plaintext bytes of the chunks written
    stored_bytes: int = 0  # bytes this copy added to the replica's packs


def copy_snapshot(primary: Repository, replica: Repository, snapshot_id: str,
                  reporter: Reporter | None = None,
                  check_cancel: Callable[[], None] | None = None) -> CopyResult:
    """Copy one snapshot; a no-op when the replica lists it already."""
    reporter = reporter or NullReporter()
    if replica.replica_of != primary.config["id"]:
        raise RepositoryError(
            f"the repository at {replica.backend.describe()} is not a replica of the one at "
            f"{primary.backend.describe()}; create one with `snapkeep replica:init NAME`")
    if replica.has_snapshot(snapshot_id):
        return CopyResult(snapshot_id, False)
    manifest = primary.load_snapshot(snapshot_id)
    refs = primary.load_references(manifest)
    if refs is None:
        raise RepositoryError(f"snapshot {snapshot_id} has no reference list (written "
                              "without a session): it cannot be copied; take a new snapshot")
    locs = primary.index.lookup_many(refs)
    absent = sorted(c for c, loc in locs.items() if loc is None)
    if absent:
        raise IntegrityError(f"chunk {absent[0]} of snapshot {snapshot_id} is missing from "
                             f"the repository at {primary.backend.describe()}; run "
                             "`snapkeep repository:check` there")
    with replica.begin_snapshot() as session, \
            ThreadPoolExecutor(THREADS, thread_name_prefix="snapkeep-copy") as pool:
        sent, have, sent_bytes = _send_chunks(primary, replica, session, pool, refs, locs,
                                              reporter, check_cancel, "copy")
        _check_copy(replica, f"copy of snapshot {snapshot_id}", sent, have)
        session.commit(manifest)
    return CopyResult(snapshot_id, True, len(refs), len(sent), sent_bytes,
                      manifest.added_bytes)


@dataclass(frozen=True)
class BinlogCopyResult:
    stream: str
    records: int = 0  # records written to the replica (segments and gaps)
    segments: int = 0
    chunks_sent: int = 0
    bytes_sent: int = 0  # plaintext bytes of the chunks written
    hole: BinlogRecord | None = None  # the gap recorded for records the primary pruned


def binlogs_to_copy(primary: Repository, replica: Repository, stream: str) -> int:
    """How many of ``stream``'s archived records the replica lacks (two listings)."""
    have = BinlogArchive(replica, stream).seqs()
    last = have[-1] if have else 0
    return sum(1 for q in BinlogArchive(primary, stream).seqs() if q > last)


def copy_binlogs(primary: Repository, replica: Repository, stream: str,
                 reporter: Reporter | None = None,
                 check_cancel: Callable[[], None] | None = None) -> BinlogCopyResult:
    """Copy the archived binlog records of ``stream`` the replica lacks (those after its
    last ``seq``), in ``seq`` order, at the primary's keys: a segment's chunks as
    ``copy_snapshot`` copies them (re-sealed, flushed, read back), then its record sealed
    under the replica's keys — records after their data, as the archive's durability rule
    says. Both archives are suffixes, each with its own retention; when the primary has
    pruned records the replica never got (its first ``seq`` is past the replica's last + 1),
    a gap record (``"follows"``: the replica's last ``seq``) is written at the ``seq``
    before the primary's first, so the replica's window stops at the hole honestly."""
    reporter = reporter or NullReporter()
    src, dst = BinlogArchive(primary, stream), BinlogArchive(replica, stream)
    have = dst.seqs()
    last = have[-1] if have else 0
    seqs = src.seqs()
    todo = [q for q in seqs if q > last]
    if not todo:
        return BinlogCopyResult(stream)
    if last and last in seqs and src.load(last).data != dst.load(last).data:
        raise RepositoryError(
            f"the binlog archive of {stream} in the replica at {replica.backend.describe()} "
            f"is not the primary's (record {last} differs): the primary's archive was started "
            f"anew; move the replica's binlogs/{stream}/ aside to copy the new one")
    # a record is written after its chunks' index: index files written since the primary
    # was opened name the chunks of the newest records
    primary.load_index()
    hole = None
    if last and todo[0] > last + 1:
        prev, first = dst.load(last), src.load(todo[0])
        hole = dst.store(BinlogRecord({
            "version": VERSION, "kind": "gap", "seq": todo[0] - 1, "file": prev.file,
            "start": prev.end if prev.kind == "segment" else prev.start,
            "next_file": first.file, "follows": last,
            "reason": f"the primary had pruned records {last + 1} to {todo[0] - 1} before "
                      "they were copied",
            "archived_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
    records = segments = chunks_sent = bytes_sent = 0
    with ThreadPoolExecutor(THREADS, thread_name_prefix="snapkeep-copy") as pool:
        for i in range(0, len(todo), RECORD_BATCH):
            batch = [src.load(q) for q in todo[i:i + RECORD_BATCH]]
            refs = [c for r in batch if r.blob is not None for c, _n in r.blob.chunks]
            locs = primary.index.lookup_many(refs)
            absent = sorted(c for c, loc in locs.items() if loc is None)
            if absent:
                raise IntegrityError(
                    f"chunk {absent[0]} of the binlog archive of {stream} is missing from "
                    f"the repository at {primary.backend.describe()}; run `snapkeep "
                    "repository:check` there")
            with replica.begin_snapshot() as session:
                sent, reused, n = _send_chunks(primary, replica, session, pool, refs, locs,
                                               reporter, check_cancel, "binlog_copy")
                _check_copy(replica, f"copy of {stream}'s binlog records {batch[0].seq} "
                            f"to {batch[-1].seq}", sent, reused)

                def write(rs: list[BinlogRecord] = batch) -> None:
                    crash_point("binlog_copy.before_records")
                    for r in rs:  # in seq order: the replica's archive stays a suffix
                        dst.store(r)

                session.commit_with(write)
            records += len(batch)
            segments += sum(1 for r in batch if r.kind == "segment")
            chunks_sent += len(sent)
            bytes_sent += n
    return BinlogCopyResult(stream, records, segments, chunks_sent, bytes_sent, hole)


def _send_chunks(primary: Repository, replica: Repository, session: SnapshotSession,
                 pool: ThreadPoolExecutor, refs: Iterable[str],
                 locs: dict[str, Location | None], reporter: Reporter,
                 check_cancel: Callable[[], None] | None, what: str
                 ) -> tuple[list[str], list[str], int]:
    """Every chunk of ``refs`` (all in the primary's index: ``locs``) the replica lacks,
    read from the primary and re-sealed into the replica's packs, flushed every
    ``flush_every`` bytes and at the end; the others referenced. (sent, reused, bytes
    sent)."""
    found = {c: loc for c, loc in locs.items() if loc is not None}
    raw = {c: loc.raw_len for c, loc in found.items()}
    # in pack order, so reading the primary goes pack after pack
    order = sorted(set(refs), key=lambda c: (found[c].pack, found[c].offset))
    total = sum(raw.values())
    reporter.add_total(total)
    flush_every = min(FLUSH_BYTES, max(FLUSH_MIN, total // 16))
    sent: list[str] = []
    sent_bytes = since_flush = 0
    have = set(order) - set(session.reuse_chunks(order))
    reporter.advance(sum(raw[c] for c in have))
    if replica.keys.id_key != primary.keys.id_key:
        raise RepositoryError(
            f"the replica at {replica.backend.describe()} names chunks differently from "
            "its primary; create it again with `snapkeep replica:init`")

    def send(cid: str) -> None:
        # as the primary encoded it (authenticated by its AEAD tag), re-sealed under
        # the replica's key: no decompression, hashing or recompression on the way;
        # the check decodes and hashes each one in the replica
        plain, length = primary.load_encoded(cid)
        session.store_encoded(cid, plain, length)

    todo = [c for c in order if c not in have]
    for i in range(0, len(todo), BATCH):
        if check_cancel is not None:
            check_cancel()
        batch = todo[i:i + BATCH]
        for _ in pool.map(send, batch):  # chunks decrypted and re-sealed in parallel
            pass
        n = sum(raw[c] for c in batch)
        sent += batch
        sent_bytes += n
        since_flush += n
        reporter.advance(n)
        if since_flush >= flush_every:
            replica.flush()
            since_flush = 0
            crash_point(f"{what}.flushed")
    replica.flush()
    crash_point(f"{what}.before_check")
    return sent, sorted(have), sent_bytes


def _check_copy(replica: Repository, what: str, sent: list[str],
                reused: list[str]) -> None:
    """Every chunk of the copy present in the replica; those written now read back."""
    where = replica.backend.describe()
    try:
        with ThreadPoolExecutor(THREADS, thread_name_prefix="snapkeep-check") as pool:
            for _ in pool.map(replica.load_chunk, sent):
                pass
    except IntegrityError as e:
        raise IntegrityError(f"{what} failed its check: {e}; it was not listed, copy it "
                             "again") from None
    stored = {k.rsplit("/", 1)[-1] for k in replica.backend.list("data/")}
    for cid in reused:
        loc = replica.index.lookup(cid)
        if loc is None or loc.pack not in stored:
            what = packs.pack_key(loc.pack) if loc else "no index file names it"
            raise IntegrityError(
                f"chunk {cid} that the {what} shares with earlier copies is "
                f"missing from the replica at {where} ({what}); run `snapkeep "
                "repository:check` on the replica, then copy again")
