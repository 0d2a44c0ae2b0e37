"""Prune — a ``PrunePlan`` of what to delete and repack, then its execution — and the
index rebuild.

Prune runs under an exclusive lock and is crash-safe: first the archived binlog records
retention drops (``binlogs.retention``: oldest first, so each stream's archive stays a
suffix), then new packs, then new index files (the last one naming the index files it
supersedes), then deletion of superseded index files, then of unused packs. A kill at any
point leaves every snapshot and every kept binlog record readable; leftovers (packs in no
index, superseded index files) are removed by the next prune. ``plan`` alone reads
and writes nothing else: it is what ``repository:prune --dry-run`` prints.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from snapkeep.errors import IntegrityError, NotFoundError, RepositoryError
from snapkeep.faults import crash_point
from snapkeep.progress import NullReporter, Reporter
from snapkeep.repository import binlogs, packs
from snapkeep.repository.check import Maintained
from snapkeep.repository.crypto import Keys
from snapkeep.repository.index import INDEX_MAX_CHUNKS, Location, PackList
from snapkeep.repository.report import Report

REPACK_THRESHOLD = 0.05  # repack a pack once more than this share of it is unused


@dataclass
class PrunePlan:
    """What a prune deletes, repacks and writes, decided from every snapshot's references."""

    referenced_chunks: int = 0
    keep: PackList = field(default_factory=list)  # kept as they are (all their entries)
    repack: PackList = field(default_factory=list)  # partly used: (id, size, live entries)
    drop: dict[str, int] = field(default_factory=dict)  # no live chunk: id -> size
    missing: list[str] = field(default_factory=list)  # of ``drop``: indexed, not stored
    orphans: dict[str, int] = field(default_factory=dict)  # stored, in no index: id -> size
    new_packs: list[tuple[int, int]] = field(default_factory=list)  # (chunks, size) written
    index_files_replaced: list[str] = field(default_factory=list)  # deleted
    index_files_written: int = 0
    binlogs: list[binlogs.Retention] = field(default_factory=list)  # per stream

    @property
    def binlog_records_dropped(self) -> int:
        return sum(len(r.drop) for r in self.binlogs)

    @property
    def changed(self) -> bool:
        """Whether the index is rewritten (packs dropped or repacked)."""
        return bool(self.drop or self.repack)

    @property
    def bytes_freed(self) -> int:
        gone = sum(s for p, s in self.drop.items() if p not in self.missing)
        gone += sum(s for _p, s, _e in self.repack) + sum(self.orphans.values())
        return gone - sum(size for _n, size in self.new_packs)

    def stats(self) -> dict[str, int]:
        """The figures of a prune's ``Report`` (``prune`` reports what it did the same way)."""
        return {"packs_kept": len(self.keep), "packs_deleted": len(self.drop),
                "packs_repacked": len(self.repack), "packs_written": len(self.new_packs),
                "orphan_packs_removed": len(self.orphans), "bytes_freed": self.bytes_freed,
                "pack_objects_deleted": len(self.drop) - len(self.missing) + len(self.repack)
                + len(self.orphans),
                "index_files_written": self.index_files_written,
                "index_files_deleted": len(self.index_files_replaced),
                "referenced_chunks": self.referenced_chunks,
                "binlog_records_deleted": self.binlog_records_dropped}

    def binlog_lines(self) -> list[str]:
        """Per stream: the records retention drops (and why), or why it keeps them all."""
        out = []
        for r in self.binlogs:
            if r.drop:
                a, b = r.drop[0], r.drop[-1]
                out.append(f"delete {len(r.drop)} archived binlog record(s) of {r.stream} "
                           f"(seq {a.seq} to {b.seq}, {a.file}:{a.start} to "
                           f"{b.file}:{b.data.get('end', b.start)}): {r.reason}")
            elif r.kept:
                out.append(f"binlogs of {r.stream}: {r.kept} record(s) {r.reason}")
        return out

    def lines(self) -> list[str]:
        """The plan for people: one line per object deleted or written."""
        out = self.binlog_lines()
        out += [f"delete {packs.pack_key(p)} ({s} bytes): no snapshot uses it"
               for p, s in sorted(self.drop.items()) if p not in self.missing]
        out += [f"forget {packs.pack_key(p)}: in the index but not stored, unused"
                for p in self.missing]
        out += [f"repack {packs.pack_key(p)} ({s} bytes): {len(e)} chunk(s) still used"
                for p, s, e in self.repack]
        out += [f"delete {packs.pack_key(p)} ({s} bytes): in no index (left by an "
                "interrupted snapshot)" for p, s in sorted(self.orphans.items())]
        out += [f"write a new pack of {n} chunk(s), {s} bytes" for n, s in self.new_packs]
        if self.index_files_written:
            out.append(f"write {self.index_files_written} index file(s) for "
                       f"{len(self.keep) + len(self.new_packs)} pack(s)")
        out += [f"delete index/{i}" for i in self.index_files_replaced]
        return out


def plan(repo: Maintained, reporter: Reporter | None, *,
         repack_threshold: float = REPACK_THRESHOLD, now: datetime | None = None
         ) -> PrunePlan:
    """What a prune would do now (``now``: which snapshots are still restorable, hence
    bases whose binlogs stay). Reads the repository, writes nothing."""
    reporter = reporter or NullReporter()
    repo.load_index()
    bad = repo.index.bad_files()
    if bad:
        raise RepositoryError(
            "cannot prune: damaged index files "
            f"({', '.join('index/' + i for i in sorted(bad))}); run "
            "repository:check, then rebuild the index")
    referenced, retained = _all_references(repo, now or datetime.now(UTC))
    view = repo.index.view()
    missing = [c for c in referenced if c not in view.locations]
    if missing:
        raise RepositoryError(f"cannot prune: {len(missing)} referenced chunk(s) are in no "
                              f"index (first: {missing[0]}); run repository:check")
    present = {pid for key in repo.backend.list("data/")
               if (pid := packs.pack_id_of_key(key)) is not None}
    by_pack: dict[str, list[tuple[str, Location]]] = defaultdict(list)
    for cid, loc in view.locations.items():
        by_pack[loc.pack].append((cid, loc))
    out = PrunePlan(referenced_chunks=len(referenced), binlogs=retained)
    for pid, size in view.pack_sizes.items():
        chunks = sorted(by_pack.get(pid, ()), key=lambda x: x[1].offset)
        live = [_entry(c, loc) for c, loc in chunks if c in referenced]
        if pid not in present and live:
            raise RepositoryError(f"cannot prune: pack {packs.pack_key(pid)} holds "
                                  "referenced chunks but is missing")
        if not live:
            out.drop[pid] = size
            if pid not in present:
                out.missing.append(pid)
        elif size - sum(e.length for e in live) > repack_threshold * size:
            out.repack.append((pid, size, live))
        else:
            out.keep.append((pid, size, [_entry(c, loc) for c, loc in chunks]))
    out.orphans = _orphan_sizes(repo, sorted(present - set(view.pack_sizes)))
    out.new_packs = [(len(n), _pack_size(repo.keys, n))
                     for n in _cut([e for _p, _s, live in out.repack for e in live])]
    if out.changed:
        counts = [len(e) for _p, _s, e in out.keep] + [n for n, _s in out.new_packs]
        out.index_files_written = len(_batches(counts))
        out.index_files_replaced = sorted(view.files)
    else:  # leftover superseded index files of an interrupted prune
        out.index_files_replaced = sorted(view.superseded)
    return out


def _entry(cid: str, loc: Location) -> packs.Entry:
    return packs.Entry(cid, loc.offset, loc.length, loc.raw_len)


def _all_references(repo: Maintained, now: datetime
                    ) -> tuple[set[str], list[binlogs.Retention]]:
    """The chunks snapshots and kept binlog records use; what retention drops per stream."""
    out: set[str] = set()
    bases: dict[str, list[binlogs.Base]] = defaultdict(list)
    for sid in sorted(repo.snapshot_ids()):
        try:
            manifest = repo.load_snapshot(sid)
            bases[manifest.environment] += binlogs.bases_of(manifest, now)
            refs = repo.load_references(manifest)
        except (IntegrityError, UnicodeDecodeError) as e:
            raise RepositoryError(f"cannot prune: snapshot {sid} cannot be read ({e}); run "
                                  "repository:check and forget or repair it first") from e
        if refs is None:
            raise RepositoryError(
                f"cannot prune: snapshot {sid} was committed without a reference list, so "
                "what it uses is unknown; forget it or re-create it with a session")
        out |= refs
    retained = []
    try:  # archived binlog segments (binlogs.py) from the oldest base on are kept
        for stream in binlogs.streams(repo):
            records = binlogs.stream_records(repo, stream)
            r = binlogs.retention(stream, records, bases.get(stream, []))
            out |= binlogs.archived_chunks(repo, records[len(r.drop):])
            retained.append(r)
    except (IntegrityError, NotFoundError) as e:
        raise RepositoryError(f"cannot prune: {e}; run repository:check") from e
    return out, retained


def _orphan_sizes(repo: Maintained, pack_ids: list[str]) -> dict[str, int]:
    out = {}
    for pid in pack_ids:
        try:
            out[pid] = len(repo.backend.get(packs.pack_key(pid)))
        except NotFoundError:
            continue
    return out


def _cut(entries: list[packs.Entry]) -> list[list[packs.Entry]]:
    """The live chunks in the packs a repack writes: cut as ``PackBuilder.full`` cuts."""
    out: list[list[packs.Entry]] = [[]]
    body = 0
    for e in entries:
        if body >= packs.PACK_TARGET:
            out.append([])
            body = 0
        out[-1].append(e)
        body += e.length
    return out if out[0] else []


def _pack_size(keys: Keys, entries: list[packs.Entry]) -> int:
    header = keys.seal(bytes(1 + packs.ENTRY.size * len(entries)), packs.AD_HEADER)
    return sum(e.length for e in entries) + len(header) + 4


def _batches(counts: list[int]) -> list[list[int]]:
    """Which packs (by position) each new index file names: at most INDEX_MAX_CHUNKS
    entries a file, unless one pack alone has more."""
    out: list[list[int]] = [[]]
    total = 0
    for i, n in enumerate(counts):
        if total >= INDEX_MAX_CHUNKS and out[-1]:
            out.append([])
            total = 0
        out[-1].append(i)
        total += n
    return out


def prune(repo: Maintained, reporter: Reporter | None, *, repack_threshold: float,
          wait: float, now: datetime | None = None) -> Report:
    """Plan under the exclusive lock, then do it; the report says what was done."""
    reporter = reporter or NullReporter()
    with repo.lock(exclusive=True, wait=wait):
        repo.flush()
        todo = plan(repo, reporter, repack_threshold=repack_threshold, now=now)
        report = execute(repo, todo, reporter)
    return report


def execute(repo: Maintained, todo: PrunePlan, reporter: Reporter) -> Report:
    """Do a plan (the caller holds the exclusive lock); count what was done."""
    report = Report("prune")
    for line in todo.binlog_lines():
        report.note(line, reporter)
    dropped = 0
    for r in todo.binlogs:  # oldest first: a kill leaves each stream's archive a suffix
        for record in r.drop:
            repo.backend.delete(binlogs.segment_key(r.stream, record.seq))
            dropped += 1
            crash_point(f"prune.binlog-deleted-{dropped}")
    new_packs = _write_repacked(repo, todo.repack)
    written = 0
    if todo.changed:
        items = todo.keep + new_packs
        batches = _batches([len(e) for _p, _s, e in items])
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1  # the last file supersedes: all are written by then
            repo.write_index([items[j] for j in batch],
                             todo.index_files_replaced if last else [])
            written += 1
        for iid in todo.index_files_replaced:
            repo.backend.delete(f"index/{iid}")
    freed = 0
    for pid, size in [(p, s) for p, s in todo.drop.items() if p not in todo.missing] \
            + [(p, s) for p, s, _e in todo.repack]:
        repo.backend.delete(packs.pack_key(pid))
        freed += size
    for pid, size in todo.orphans.items():
        repo.backend.delete(packs.pack_key(pid))
        freed += size
        report.note(f"removed {packs.pack_key(pid)}: in no index (left by an interrupted "
                    "snapshot)", reporter)
    freed -= sum(size for _p, size, _e in new_packs)
    if not todo.changed:
        for iid in todo.index_files_replaced:
            repo.backend.delete(f"index/{iid}")
    repo.reset_index()
    deleted = len(todo.drop) - len(todo.missing) + len(todo.repack)
    report.stats.update(packs_kept=len(todo.keep), packs_deleted=len(todo.drop),
                        packs_repacked=len(todo.repack), packs_written=len(new_packs),
                        orphan_packs_removed=len(todo.orphans), bytes_freed=freed,
                        pack_objects_deleted=deleted + len(todo.orphans),
                        index_files_written=written,
                        index_files_deleted=len(todo.index_files_replaced),
                        referenced_chunks=todo.referenced_chunks,
                        binlog_records_deleted=todo.binlog_records_dropped)
    reporter.log(f"prune: {len(todo.drop)} pack(s) deleted, {len(todo.repack)} repacked "
                 f"into {len(new_packs)}, {len(todo.orphans)} orphan(s) removed, "
                 f"{freed} bytes freed")
    return report


def _write_repacked(repo: Maintained, repack: PackList) -> PackList:
    """New packs holding the live chunks of partly-used packs (each verified first)."""
    written: PackList = []
    builder = packs.PackBuilder()

    def write(b: packs.PackBuilder) -> None:
        pid, data = b.build(repo.keys)
        repo.backend.put(packs.pack_key(pid), data)
        written.append((pid, len(data), list(b.entries.values())))

    for pid, _size, live in repack:
        key = packs.pack_key(pid)
        data = repo.backend.get(key)
        for e in live:
            sealed = data[e.offset:e.offset + e.length]
            repo.decode_chunk(e.cid, sealed, e.raw_len, key)  # never copy damage
            builder.add(e.cid, sealed, e.raw_len)
            if builder.full():
                write(builder)
                builder = packs.PackBuilder()
    if builder.entries:
        write(builder)
    return written


def rebuild_index(repo: Maintained, reporter: Reporter | None) -> Report:
    """Write a fresh index from every readable pack header (repairs damaged index files)."""
    reporter = reporter or NullReporter()
    report = Report("rebuild-index")
    with repo.lock(exclusive=True):
        repo.flush()
        old = [k.rsplit("/", 1)[-1] for k in repo.backend.list("index/")]
        items = []
        for key in sorted(repo.backend.list("data/")):
            pid = packs.pack_id_of_key(key)
            if pid is None:
                continue
            data = repo.backend.get(key)
            try:
                header = packs.read_header(repo.keys, data)
            except ValueError as e:
                report.problem(key, f"unreadable pack header, left out: {e}", reporter)
                continue
            items.append((pid, len(data), header))
        repo.write_index(items, old)
        for iid in old:
            repo.backend.delete(f"index/{iid}")
        repo.reset_index()
        report.stats.update(packs=len(items), index_files_replaced=len(old))
    return report
