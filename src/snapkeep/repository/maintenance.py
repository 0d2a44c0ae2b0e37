"""Verify, check, prune, index rebuild and per-snapshot usage.

Reports list each problem with the object key it concerns and what is wrong. Prune runs
under an exclusive lock and is crash-safe: new packs, then new index files (the last one
naming the index files it supersedes), then deletion of superseded index files, then of
unused packs. A kill at any point leaves every snapshot readable; leftovers (packs in no
index, superseded index files) are removed by the next prune.
"""

from __future__ import annotations

import json
import struct
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import blake3

from snapkeep.errors import IntegrityError, NotFoundError, RepositoryError
from snapkeep.progress import NullReporter, Reporter
from snapkeep.repository import crypto, packs
from snapkeep.repository.blobs import BlobRef

if TYPE_CHECKING:
    from snapkeep.repository.repository import Repository


@dataclass
class Problem:
    key: str  # the repository object concerned, e.g. data/ab/ab12…, index/…, snapshots/…
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


@dataclass
class Report:
    kind: str  # "verify", "check", "prune", "rebuild-index"
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, key: str, message: str, reporter: Reporter | None = None) -> None:
        self.problems.append(Problem(key, message))
        if reporter is not None:
            reporter.log(f"problem: {key}: {message}")

    def note(self, message: str, reporter: Reporter | None = None) -> None:
        self.notes.append(message)
        if reporter is not None:
            reporter.log(message)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "ok": self.ok,
                "problems": [{"key": p.key, "message": p.message} for p in self.problems],
                "notes": list(self.notes), "stats": dict(self.stats)}


def blob_refs_in(obj: Any) -> list[BlobRef]:
    """Every BlobRef-shaped value ({"size": n, "chunks": [[id, n], ...]}) inside a document."""
    out: list[BlobRef] = []
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            if set(x) == {"size", "chunks"} and isinstance(x["chunks"], list):
                try:
                    out.append(BlobRef.from_json(x))
                    continue
                except (TypeError, ValueError, KeyError):
                    pass
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return out


def _manifest_blobs(manifest: Any) -> list[BlobRef]:
    return blob_refs_in({"services": manifest.services, "mounts": manifest.mounts})


# -- verify ----------------------------------------------------------------------------------


def verify_snapshot(repo: Repository, snapshot_id: str, reporter: Reporter | None) -> Report:
    reporter = reporter or NullReporter()
    report = Report("verify")
    key = repo._manifest_key(snapshot_id)
    repo.load_index()
    try:
        manifest = repo.load_snapshot(snapshot_id)
    except IntegrityError as e:
        report.problem(key, str(e), reporter)
        return report
    blobs = _manifest_blobs(manifest)
    try:
        refs = repo.load_references(manifest)
    except (IntegrityError, UnicodeDecodeError) as e:
        report.problem(key, f"its reference list cannot be read: {e}", reporter)
        refs = None
    if refs is None:
        if manifest.references is None:
            report.note(f"snapshot {snapshot_id} has no reference list (committed without a "
                        "session): checking the blobs its manifest names", reporter)
        refs = {c for b in blobs for c, _n in b.chunks}
    else:
        for b in blobs:
            for c, _n in b.chunks:
                if c not in refs:
                    report.problem(key, f"chunk {c} of a blob in the manifest is not in its "
                                   "reference list", reporter)
                    refs.add(c)
    lengths = {c: n for b in blobs for c, n in b.chunks}
    with repo._mutex:
        locs = {c: repo._index.get(c) for c in refs}
    order = sorted(refs, key=lambda c: (locs[c] is None, locs[c] or ("", 0)))
    reporter.add_total(sum(loc.raw_len for loc in locs.values() if loc))
    checked = 0
    for cid in order:
        loc = locs[cid]
        if loc is None:
            report.problem(key, f"chunk {cid} is in no index file: it is missing", reporter)
            continue
        try:
            data = repo.load_chunk(cid, loc.raw_len)
        except IntegrityError as e:
            report.problem(packs.pack_key(loc.pack), str(e), reporter)
            continue
        if cid in lengths and len(data) != lengths[cid]:
            report.problem(key, f"chunk {cid} has {len(data)} bytes; the manifest says "
                           f"{lengths[cid]}", reporter)
        checked += 1
        reporter.advance(loc.raw_len)
    report.stats.update(chunks=len(refs), chunks_ok=checked, blobs=len(blobs))
    return report


# -- check -----------------------------------------------------------------------------------


def _read_index_files(repo: Repository, report: Report, reporter: Reporter
                      ) -> tuple[dict[str, dict[str, Any]], set[str]]:
    docs: dict[str, dict[str, Any]] = {}
    for key in sorted(repo.backend.list("index/")):
        iid = key.rsplit("/", 1)[-1]
        try:
            docs[iid] = repo._parse_index(iid, repo.backend.get(key))
        except NotFoundError:
            continue
        except (ValueError, KeyError, TypeError) as e:
            report.problem(key, f"damaged index file: {e}", reporter)
    superseded = {s for d in docs.values() for s in d.get("supersedes", [])}
    return docs, superseded


def _pack_tail(repo: Repository, pack_id: str, size: int | None) -> bytes:
    key = packs.pack_key(pack_id)
    get_range = getattr(repo.backend, "get_range", None)
    if get_range is None or size is None:
        return repo.backend.get(key)
    (hlen,) = struct.unpack("<I", get_range(key, size - 4, 4))
    return get_range(key, size - 4 - hlen, hlen + 4)


def _header_of_tail(repo: Repository, tail: bytes, size: int) -> list[packs.Entry]:
    (hlen,) = struct.unpack("<I", tail[-4:])
    if hlen + 4 > len(tail) or hlen + 4 > size:
        raise ValueError("the header length is out of range")
    return packs.parse_header(repo.keys, tail[-4 - hlen:-4], size - 4 - hlen)


def check(repo: Repository, read_data: bool, reporter: Reporter | None) -> Report:
    reporter = reporter or NullReporter()
    report = Report("check")
    cfg = repo.config
    for name in ("id", "chunker", "cipher", "hash"):
        if name not in cfg:
            report.problem("config", f"has no {name!r}", reporter)
    # key slots
    for key in sorted(repo.backend.list("keys/")):
        try:
            slot = json.loads(repo.backend.get(key))
            kind = slot["kind"]
            if kind == "unprotected":
                master = crypto.unb64(slot["master_key"])
                if crypto.Keys.from_master(master).check_value(cfg["id"]) != cfg["key_check"]:
                    report.problem(key, "holds a key that is not this repository's", reporter)
            elif kind == "passphrase":
                crypto.unb64(slot["wrapped"])
                crypto.unb64(slot["kdf_params"]["salt"])
            else:
                report.problem(key, f"unknown key slot kind {kind!r}", reporter)
        except (ValueError, KeyError, TypeError) as e:
            report.problem(key, f"damaged key slot: {e}", reporter)
    # index files
    docs, superseded = _read_index_files(repo, report, reporter)
    indexed: dict[str, tuple[int, dict[str, tuple[int, int, int]], str]] = {}
    for iid, doc in docs.items():
        if iid in superseded:
            report.note(f"index/{iid} is superseded (left by an interrupted prune; the next "
                        "prune deletes it)", reporter)
            continue
        for p in doc["packs"]:
            ent = {c: (o, n, r) for c, o, n, r in p["chunks"]}
            if p["id"] in indexed:
                indexed[p["id"]][1].update(ent)
            else:
                indexed[p["id"]] = (int(p["size"]), ent, f"index/{iid}")
    chunk_packs: dict[str, str] = {}
    for pid, (_s, ent, _k) in indexed.items():
        for c in ent:
            chunk_packs.setdefault(c, pid)
    # packs
    present: set[str] = set()
    for key in repo.backend.list("data/"):
        pid = packs.pack_id_of_key(key)
        if pid is None:
            report.problem(key, "is not a pack (unexpected object under data/)", reporter)
        else:
            present.add(pid)
    orphans = present - set(indexed)
    if orphans:
        report.note(f"{len(orphans)} pack(s) are in no index (left by interrupted snapshots; "
                    "prune removes them)", reporter)
    reporter.add_total(sum(s for s, _e, _k in indexed.values()))
    for pid in sorted(indexed):
        size, ent, ikey = indexed[pid]
        key = packs.pack_key(pid)
        if pid not in present:
            report.problem(key, f"is listed in {ikey} but missing", reporter)
            continue
        try:
            data = repo.backend.get(key) if read_data else _pack_tail(repo, pid, size)
        except NotFoundError:
            report.problem(key, f"is listed in {ikey} but missing", reporter)
            continue
        if read_data:
            if len(data) != size:
                report.problem(key, f"has {len(data)} bytes; {ikey} says {size}", reporter)
            if blake3.blake3(data).hexdigest() != pid:
                report.problem(key, "its content does not match its name (hash): the pack is "
                               "damaged", reporter)
        try:
            header = _header_of_tail(repo, data, len(data) if read_data else size)
        except (ValueError, struct.error) as e:
            report.problem(key, f"unreadable pack header: {e}", reporter)
            header = None
        if header is not None:
            hmap = {e.cid: (e.offset, e.length, e.raw_len) for e in header}
            for c, loc in ent.items():
                if hmap.get(c) != tuple(loc):
                    report.problem(key, f"chunk {c} is listed in {ikey} at {list(loc)} but "
                                   f"the pack header says {hmap.get(c)}", reporter)
        if read_data:
            for c, (off, length, raw_len) in sorted(ent.items(), key=lambda x: x[1][0]):
                try:
                    repo._decode_chunk(c, data[off:off + length], raw_len, key)
                except IntegrityError as e:
                    report.problem(key, str(e), reporter)
        reporter.advance(size)
    # snapshots
    nsnap = 0
    for sid in sorted(repo.snapshot_ids()):
        nsnap += 1
        skey = repo._manifest_key(sid)
        try:
            manifest = repo.load_snapshot(sid)
        except IntegrityError as e:
            report.problem(skey, str(e), reporter)
            continue
        try:
            refs = repo.load_references(manifest)
        except (IntegrityError, UnicodeDecodeError) as e:
            report.problem(skey, f"its reference list cannot be read: {e}", reporter)
            continue
        if refs is None:
            report.note(f"snapshot {sid} has no reference list (committed without a session)",
                        reporter)
            refs = {c for b in _manifest_blobs(manifest) for c, _n in b.chunks}
        missing = sorted(c for c in refs if chunk_packs.get(c) not in present)
        if missing:
            report.problem(skey, f"{len(missing)} referenced chunk(s) are missing "
                           f"(first: {missing[0]})", reporter)
    report.stats.update(index_files=len(docs), packs=len(present), orphan_packs=len(orphans),
                        snapshots=nsnap, chunks=len(chunk_packs))
    return report


# -- prune -----------------------------------------------------------------------------------


def _all_references(repo: Repository, reporter: Reporter) -> dict[str, set[str]]:
    out = {}
    for sid in sorted(repo.snapshot_ids()):
        try:
            manifest = repo.load_snapshot(sid)
            refs = repo.load_references(manifest)
        except (IntegrityError, UnicodeDecodeError) as e:
            raise RepositoryError(f"cannot prune: snapshot {sid} cannot be read ({e}); run "
                                  "repository:check and forget or repair it first") from e
        if refs is None:
            raise RepositoryError(
                f"cannot prune: snapshot {sid} was committed without a reference list, so "
                "what it uses is unknown; forget it or re-create it with a session")
        out[sid] = refs
    return out


def prune(repo: Repository, reporter: Reporter | None, *, repack_threshold: float,
          wait: float) -> Report:
    reporter = reporter or NullReporter()
    report = Report("prune")
    with repo.lock(exclusive=True, wait=wait):
        repo.flush()
        repo.load_index()
        if repo._bad_indexes:
            raise RepositoryError(
                "cannot prune: damaged index files "
                f"({', '.join('index/' + i for i in sorted(repo._bad_indexes))}); run "
                "repository:check, then rebuild the index")
        referenced: set[str] = set()
        for refs in _all_references(repo, reporter).values():
            referenced |= refs
        with repo._mutex:
            index = dict(repo._index)
            sizes = dict(repo._pack_sizes)
            old_index_files = set(repo._index_files) | set(repo._superseded)
        missing = [c for c in referenced if c not in index]
        if missing:
            raise RepositoryError(f"cannot prune: {len(missing)} referenced chunk(s) are in no "
                                  f"index (first: {missing[0]}); run repository:check")
        present: set[str] = set()
        for key in repo.backend.list("data/"):
            pid = packs.pack_id_of_key(key)
            if pid is not None:
                present.add(pid)
        by_pack: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        for cid, loc in index.items():
            by_pack[loc.pack].append((cid, loc))
        keep, drop, repack = [], [], []
        for pid, size in sizes.items():
            live = [(c, loc) for c, loc in by_pack.get(pid, ()) if c in referenced]
            if pid not in present:
                if live:
                    raise RepositoryError(f"cannot prune: pack {packs.pack_key(pid)} holds "
                                          "referenced chunks but is missing")
                drop.append(pid)
                continue
            live_bytes = sum(loc.length for _c, loc in live)
            if not live:
                drop.append(pid)
            elif size - live_bytes > repack_threshold * size:
                repack.append(pid)
            else:
                keep.append(pid)
        orphans = sorted(present - set(sizes))
        # 1. new packs with the live chunks of partly-used packs (verified before copying)
        new_packs: list[tuple[str, int, list[packs.Entry]]] = []
        builder = packs.PackBuilder()

        def write(b: packs.PackBuilder) -> None:
            pid, data = b.build(repo.keys)
            repo.backend.put(packs.pack_key(pid), data)
            new_packs.append((pid, len(data), list(b.entries.values())))

        for pid in repack:
            key = packs.pack_key(pid)
            data = repo.backend.get(key)
            for cid, loc in sorted(by_pack[pid], key=lambda x: x[1].offset):
                if cid not in referenced:
                    continue
                sealed = data[loc.offset:loc.offset + loc.length]
                repo._decode_chunk(cid, sealed, loc.raw_len, key)  # never copy damage
                builder.add(cid, sealed, loc.raw_len)
                if builder.full():
                    write(builder)
                    builder = packs.PackBuilder()
        if builder.entries:
            write(builder)
        # 2. new index files: kept packs (all their entries) + new packs; the last supersedes
        entries: list[tuple[str, int, list[packs.Entry]]] = []
        for pid in keep:
            ents = [packs.Entry(c, loc.offset, loc.length, loc.raw_len)
                    for c, loc in sorted(by_pack[pid], key=lambda x: x[1].offset)]
            entries.append((pid, sizes[pid], ents))
        entries.extend(new_packs)
        changed = bool(drop or repack)
        if changed:
            batches: list[list[tuple[str, int, list[packs.Entry]]]] = [[]]
            count = 0
            for item in entries:
                if count >= repo_index_max() and batches[-1]:
                    batches.append([])
                    count = 0
                batches[-1].append(item)
                count += len(item[2])
            for i, batch in enumerate(batches):
                last = i == len(batches) - 1
                repo._write_index(batch, sorted(old_index_files) if last else [])
            # 3. superseded index files, 4. unused packs
            for iid in sorted(old_index_files):
                repo.backend.delete(f"index/{iid}")
        freed = 0
        deleted = 0
        for pid in drop + repack:
            if pid in present:
                repo.backend.delete(packs.pack_key(pid))
                freed += sizes[pid]
                deleted += 1
        for pid in orphans:
            key = packs.pack_key(pid)
            try:
                freed += len(repo.backend.get(key))
            except NotFoundError:
                continue
            repo.backend.delete(key)
            report.note(f"removed {key}: in no index (left by an interrupted snapshot)",
                        reporter)
        freed -= sum(size for _p, size, _e in new_packs)
        if not changed:
            # Leftover superseded index files of an interrupted prune.
            for iid in sorted(repo._superseded):
                repo.backend.delete(f"index/{iid}")
        repo._reset_index()
        report.stats.update(packs_kept=len(keep), packs_deleted=len(drop),
                            packs_repacked=len(repack), packs_written=len(new_packs),
                            orphan_packs_removed=len(orphans), bytes_freed=freed,
                            pack_objects_deleted=deleted + len(orphans),
                            referenced_chunks=len(referenced))
        reporter.log(f"prune: {len(drop)} pack(s) deleted, {len(repack)} repacked into "
                     f"{len(new_packs)}, {len(orphans)} orphan(s) removed, {freed} bytes freed")
    return report


def repo_index_max() -> int:
    from snapkeep.repository.repository import INDEX_MAX_CHUNKS

    return INDEX_MAX_CHUNKS


def rebuild_index(repo: Repository, reporter: Reporter | None) -> Report:
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
        repo._write_index(items, old)
        for iid in old:
            repo.backend.delete(f"index/{iid}")
        repo._reset_index()
        report.stats.update(packs=len(items), index_files_replaced=len(old))
    return report


# -- usage -----------------------------------------------------------------------------------


def snapshot_usage(repo: Repository, snapshot_id: str) -> dict[str, int]:
    """Logical size, stored size of its chunks, and stored bytes only it references."""
    repo.load_index()
    manifest = repo.load_snapshot(snapshot_id)
    refs = repo.load_references(manifest)
    if refs is None:
        refs = {c for b in _manifest_blobs(manifest) for c, _n in b.chunks}
    others: set[str] = set()
    for sid in repo.snapshot_ids():
        if sid == snapshot_id:
            continue
        try:
            o = repo.load_references(repo.load_snapshot(sid))
        except (IntegrityError, NotFoundError, UnicodeDecodeError):
            o = None
        if o:
            others |= o
    with repo._mutex:
        locs = {c: repo._index.get(c) for c in refs}
    stored = sum(loc.length for loc in locs.values() if loc)
    unique = sum(loc.length for c, loc in locs.items() if loc and c not in others)
    return {"logical_bytes": manifest.size_bytes, "stored_bytes": stored,
            "unique_bytes": unique, "added_bytes": manifest.added_bytes, "chunks": len(refs)}
