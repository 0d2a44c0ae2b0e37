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
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from snapkeep.errors import IntegrityError, RepositoryError
from snapkeep.faults import crash_point
from snapkeep.progress import NullReporter, Reporter
from snapkeep.repository import packs

if TYPE_CHECKING:
    from snapkeep.repository.repository import Repository

# Plaintext copied between two index files (what a killed copy can lose): at most 64 MiB,
# a sixteenth of the copy for smaller ones, never under 4 MiB (each flush cuts a pack).
FLUSH_BYTES = 64 * 1024 * 1024
FLUSH_MIN = 4 * 1024 * 1024
# Chunks decrypted, hash-checked and re-sealed at once (AES, zstd and BLAKE3 release the
# GIL), in batches between which a cancel is seen and a flush may come.
THREADS = min(4, os.cpu_count() or 1)
BATCH = 16


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
    found = {c: loc for c, loc in locs.items() if loc is not None}
    raw = {c: loc.raw_len for c, loc in found.items()}
    # in pack order, so reading the primary goes pack after pack
    order = sorted(refs, key=lambda c: (found[c].pack, found[c].offset))
    total = sum(raw.values())
    reporter.add_total(total)
    flush_every = min(FLUSH_BYTES, max(FLUSH_MIN, total // 16))
    sent: list[str] = []
    sent_bytes = since_flush = 0
    with replica.begin_snapshot() as session, \
            ThreadPoolExecutor(THREADS, thread_name_prefix="snapkeep-copy") as pool:
        have = set(order) - set(session.reuse_chunks(order))
        reporter.advance(sum(raw[c] for c in have))

        if replica.keys.id_key != primary.keys.id_key:
            raise RepositoryError(
                f"the replica at {replica.backend.describe()} names chunks differently from "
                "its primary; create it again with `snapkeep replica:init`")

        def send(cid: str) -> None:
            # as the primary encoded it (authenticated by its AEAD tag), re-sealed under
            # the replica's key: no decompression, hashing or recompression on the way;
            # the check below decodes and hashes each one in the replica
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
                crash_point("copy.flushed")
        replica.flush()
        crash_point("copy.before_check")
        _check_copy(replica, snapshot_id, sent, sorted(have))
        session.commit(manifest)
    return CopyResult(snapshot_id, True, len(order), len(sent), sent_bytes,
                      manifest.added_bytes)


def _check_copy(replica: Repository, snapshot_id: str, sent: list[str],
                reused: list[str]) -> None:
    """Every chunk of the copy present in the replica; those written now read back."""
    where = replica.backend.describe()
    try:
        with ThreadPoolExecutor(THREADS, thread_name_prefix="snapkeep-check") as pool:
            for _ in pool.map(replica.load_chunk, sent):
                pass
    except IntegrityError as e:
        raise IntegrityError(f"copy of snapshot {snapshot_id} failed its check: {e}; "
                             "it was not listed, copy it again") from None
    stored = {k.rsplit("/", 1)[-1] for k in replica.backend.list("data/")}
    for cid in reused:
        loc = replica.index.lookup(cid)
        if loc is None or loc.pack not in stored:
            what = packs.pack_key(loc.pack) if loc else "no index file names it"
            raise IntegrityError(
                f"chunk {cid} that snapshot {snapshot_id} shares with earlier copies is "
                f"missing from the replica at {where} ({what}); run `snapkeep "
                "repository:check` on the replica, then copy again")
