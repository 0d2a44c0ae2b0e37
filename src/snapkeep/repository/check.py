"""Verify a snapshot, check the repository (structure, packs, data), per-snapshot usage.

Reports list each problem with the object key it concerns and what is wrong. Nothing here
writes to the repository.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import blake3

from snapkeep.errors import IntegrityError, NotFoundError
from snapkeep.progress import NullReporter, Reporter
from snapkeep.repository import binlogs, crypto, packs
from snapkeep.repository.blobs import BlobRef
from snapkeep.repository.crypto import Keys
from snapkeep.repository.index import Index, PackList, parse_file
from snapkeep.repository.locks import RepoLock
from snapkeep.repository.manifest import SnapshotManifest
from snapkeep.repository.report import Report
from snapkeep.storage import Backend


class Maintained(Protocol):
    """What verify, check and prune need of the ``Repository`` (a Protocol: these modules
    do not import repository.py, which imports them)."""

    backend: Backend
    config: dict[str, Any]
    keys: Keys
    index: Index

    def lock(self, exclusive: bool = False, *, wait: float = 0.0) -> RepoLock: ...
    def flush(self, check: Callable[[], None] | None = None) -> None: ...
    def load_index(self) -> None: ...
    def reset_index(self) -> None: ...
    def write_index(self, pack_list: PackList, supersedes: list[str] | None = None
                    ) -> str: ...
    def manifest_key(self, snapshot_id: str) -> str: ...
    def snapshot_ids(self) -> Iterator[str]: ...
    def load_snapshot(self, snapshot_id: str) -> SnapshotManifest: ...
    def load_references(self, manifest: SnapshotManifest) -> set[str] | None: ...
    def load_chunk(self, cid: str, raw_len: int | None = None) -> bytes: ...
    def decode_chunk(self, cid: str, sealed: bytes, raw_len: int, where: str) -> bytes: ...


# (size, chunk id -> (offset, length, raw_len), the index file naming it) per pack id
Indexed = dict[str, tuple[int, dict[str, tuple[int, int, int]], str]]


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


def manifest_blobs(manifest: SnapshotManifest) -> list[BlobRef]:
    return blob_refs_in({"services": manifest.services, "mounts": manifest.mounts})


def manifest_chunks(manifest: SnapshotManifest) -> set[str]:
    """The chunks of the blobs a manifest names (for one without a reference list)."""
    return {c for b in manifest_blobs(manifest) for c, _n in b.chunks}


# -- verify ----------------------------------------------------------------------------------


def verify_snapshot(repo: Maintained, snapshot_id: str, reporter: Reporter | None) -> Report:
    reporter = reporter or NullReporter()
    report = Report("verify")
    key = repo.manifest_key(snapshot_id)
    repo.load_index()
    try:
        manifest = repo.load_snapshot(snapshot_id)
    except IntegrityError as e:
        report.problem(key, str(e), reporter)
        return report
    blobs = manifest_blobs(manifest)
    refs = _verified_references(repo, manifest, blobs, report, reporter)
    lengths = {c: n for b in blobs for c, n in b.chunks}
    locs = repo.index.lookup_many(refs)
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


def _verified_references(repo: Maintained, manifest: SnapshotManifest, blobs: list[BlobRef],
                         report: Report, reporter: Reporter) -> set[str]:
    """The snapshot's reference list, with every chunk of its manifest's blobs in it."""
    key = repo.manifest_key(manifest.id)
    try:
        refs = repo.load_references(manifest)
    except (IntegrityError, UnicodeDecodeError) as e:
        report.problem(key, f"its reference list cannot be read: {e}", reporter)
        refs = None
    if refs is None:
        if manifest.references is None:
            report.note(f"snapshot {manifest.id} has no reference list (committed without a "
                        "session): checking the blobs its manifest names", reporter)
        return {c for b in blobs for c, _n in b.chunks}
    for b in blobs:
        for c, _n in b.chunks:
            if c not in refs:
                report.problem(key, f"chunk {c} of a blob in the manifest is not in its "
                               "reference list", reporter)
                refs.add(c)
    return refs


# -- check: structure ------------------------------------------------------------------------


def check(repo: Maintained, read_data: bool, reporter: Reporter | None) -> Report:
    """Structure (config, key slots, index files), packs (present, headers matching the
    index; with ``read_data`` every chunk), then each snapshot's references."""
    reporter = reporter or NullReporter()
    report = Report("check")
    check_config(repo, report, reporter)
    docs, superseded = read_index_files(repo, report, reporter)
    indexed = _indexed_packs(docs, superseded, report, reporter)
    present = check_packs(repo, indexed, read_data, report, reporter)
    chunk_packs: dict[str, str] = {}
    for pid, (_s, ent, _k) in indexed.items():
        for c in ent:
            chunk_packs.setdefault(c, pid)
    nsnap = check_snapshots(repo, chunk_packs, present, report, reporter)
    if nbin := binlogs.check_archived(repo, chunk_packs, present, report, reporter):
        report.stats["binlog_records"] = nbin
    report.stats.update(index_files=len(docs), packs=len(present),
                        orphan_packs=len(present - set(indexed)), snapshots=nsnap,
                        chunks=len(chunk_packs))
    return report


def check_config(repo: Maintained, report: Report, reporter: Reporter) -> None:
    """The config's required fields and every key slot."""
    cfg = repo.config
    for name in ("id", "chunker", "cipher", "hash"):
        if name not in cfg:
            report.problem("config", f"has no {name!r}", reporter)
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


def read_index_files(repo: Maintained, report: Report, reporter: Reporter
                     ) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Every readable index file's document, and the ids of those superseded."""
    docs: dict[str, dict[str, Any]] = {}
    for key in sorted(repo.backend.list("index/")):
        iid = key.rsplit("/", 1)[-1]
        try:
            docs[iid] = parse_file(repo.keys, iid, repo.backend.get(key))
        except NotFoundError:
            continue
        except (ValueError, KeyError, TypeError) as e:
            report.problem(key, f"damaged index file: {e}", reporter)
    superseded = {s for d in docs.values() for s in d.get("supersedes", [])}
    return docs, superseded


def _indexed_packs(docs: dict[str, dict[str, Any]], superseded: set[str], report: Report,
                   reporter: Reporter) -> Indexed:
    indexed: Indexed = {}
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
    return indexed


# -- check: packs and data -------------------------------------------------------------------


def check_packs(repo: Maintained, indexed: Indexed, read_data: bool, report: Report,
                reporter: Reporter) -> set[str]:
    """Each indexed pack against its index entries (and its data); the packs present."""
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
        if pid not in present:
            report.problem(packs.pack_key(pid), f"is listed in {indexed[pid][2]} but missing",
                           reporter)
            continue
        _check_pack(repo, pid, indexed[pid], read_data, report, reporter)
        reporter.advance(indexed[pid][0])
    return present


def _check_pack(repo: Maintained, pid: str,
                listed: tuple[int, dict[str, tuple[int, int, int]], str],
                read_data: bool, report: Report, reporter: Reporter) -> None:
    """A pack's header against its index entries; with ``read_data`` its data too."""
    size, ent, ikey = listed
    key = packs.pack_key(pid)
    try:
        data = repo.backend.get(key) if read_data else _pack_tail(repo, pid, size)
    except NotFoundError:
        report.problem(key, f"is listed in {ikey} but missing", reporter)
        return
    if read_data:
        if len(data) != size:
            report.problem(key, f"has {len(data)} bytes; {ikey} says {size}", reporter)
        if blake3.blake3(data).hexdigest() != pid:
            report.problem(key, "its content does not match its name (hash): the pack is "
                           "damaged", reporter)
    try:
        header = _header_of_tail(repo.keys, data, len(data) if read_data else size)
    except (ValueError, struct.error) as e:
        report.problem(key, f"unreadable pack header: {e}", reporter)
    else:
        hmap = {e.cid: (e.offset, e.length, e.raw_len) for e in header}
        for c, loc in ent.items():
            if hmap.get(c) != tuple(loc):
                report.problem(key, f"chunk {c} is listed in {ikey} at {list(loc)} but "
                               f"the pack header says {hmap.get(c)}", reporter)
    if read_data:
        _check_pack_data(repo, key, data, ent, report, reporter)


def _check_pack_data(repo: Maintained, key: str, data: bytes,
                     ent: dict[str, tuple[int, int, int]], report: Report,
                     reporter: Reporter) -> None:
    """Every chunk the index lists in a whole pack: decrypted and hash-checked."""
    for c, (off, length, raw_len) in sorted(ent.items(), key=lambda x: x[1][0]):
        try:
            repo.decode_chunk(c, data[off:off + length], raw_len, key)
        except IntegrityError as e:
            report.problem(key, str(e), reporter)


def _pack_tail(repo: Maintained, pack_id: str, size: int | None) -> bytes:
    key = packs.pack_key(pack_id)
    get_range = getattr(repo.backend, "get_range", None)
    if get_range is None or size is None:
        return repo.backend.get(key)
    (hlen,) = struct.unpack("<I", get_range(key, size - 4, 4))
    tail: bytes = get_range(key, size - 4 - hlen, hlen + 4)
    return tail


def _header_of_tail(keys: Keys, tail: bytes, size: int) -> list[packs.Entry]:
    (hlen,) = struct.unpack("<I", tail[-4:])
    if hlen + 4 > len(tail) or hlen + 4 > size:
        raise ValueError("the header length is out of range")
    return packs.parse_header(keys, tail[-4 - hlen:-4], size - 4 - hlen)


# -- check: snapshots ------------------------------------------------------------------------


def check_snapshots(repo: Maintained, chunk_packs: dict[str, str], present: set[str],
                    report: Report, reporter: Reporter) -> int:
    """Every snapshot's referenced chunks are in a pack that is there; how many snapshots."""
    nsnap = 0
    for sid in sorted(repo.snapshot_ids()):
        nsnap += 1
        skey = repo.manifest_key(sid)
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
            refs = manifest_chunks(manifest)
        missing = sorted(c for c in refs if chunk_packs.get(c) not in present)
        if missing:
            report.problem(skey, f"{len(missing)} referenced chunk(s) are missing "
                           f"(first: {missing[0]})", reporter)
    return nsnap


# -- usage -----------------------------------------------------------------------------------


def snapshot_usage(repo: Maintained, snapshot_id: str) -> dict[str, int]:
    """Logical size, stored size of its chunks, and stored bytes only it references."""
    repo.load_index()
    manifest = repo.load_snapshot(snapshot_id)
    refs = repo.load_references(manifest)
    if refs is None:
        refs = manifest_chunks(manifest)
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
    locs = repo.index.lookup_many(refs)
    stored = sum(loc.length for loc in locs.values() if loc)
    unique = sum(loc.length for c, loc in locs.items() if loc and c not in others)
    return {"logical_bytes": manifest.size_bytes, "stored_bytes": stored,
            "unique_bytes": unique, "added_bytes": manifest.added_bytes, "chunks": len(refs)}
