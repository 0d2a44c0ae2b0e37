"""The repository: packs of encrypted chunks, index files, snapshot manifests, key slots.

Write order is packs → index → manifest; the manifest's atomic put is the commit point of
a snapshot. A crash before it leaves only unreferenced packs (and perhaps an index naming
them), which ``prune`` removes. A session that fails removes at once the packs only it
used and no index file names yet (``discard_session``). Nothing is modified in place. See
docs/repository-format.md for every byte.

Threads: one ``Repository`` may be shared by any number of threads storing and reading
chunks and blobs, flushing, and running ``SnapshotSession``s (themselves thread-safe).
Two locks guard its state: the ``PackWriter``'s (the open pack, uploads in flight, packs
no index file names yet) and the ``Index``'s (the lookup tables), always taken in that
order. A ``BlobWriter``/``BlobReader`` belongs to one thread. ``prune`` and
``rebuild_index`` hold the exclusive repository lock, which a session's shared lock keeps
out, but they re-read the index: no thread may write without a session meanwhile.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from snapkeep.errors import IntegrityError, NotFoundError, RepositoryError
from snapkeep.progress import Reporter
from snapkeep.repository import check as checking
from snapkeep.repository import chunks, crypto, opening, packs
from snapkeep.repository import prune as pruning
from snapkeep.repository.blobs import BlobReader, BlobRef, BlobWriter, Scratch
from snapkeep.repository.crypto import Keys, SealError
from snapkeep.repository.index import Index, PackList, parse_file
from snapkeep.repository.keyslots import KeyManagement
from snapkeep.repository.locks import REFRESH_S, RepoLock, release_locks_of
from snapkeep.repository.manifest import SnapshotManifest, manifest_ad, open_doc, seal_doc
from snapkeep.repository.pack_cache import PackCache
from snapkeep.repository.pages import PageChunker
from snapkeep.repository.report import Report
from snapkeep.repository.session import SnapshotSession
from snapkeep.repository.writer import Discarded, PackWriter
from snapkeep.storage import Backend, get_range_into

log = logging.getLogger("snapkeep.repository")


class _IdOnly:
    """A chunk sink that only names chunks (the keyed hash), storing nothing."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys

    def store_chunk(self, data: bytes | memoryview, level: int = chunks.ZSTD_LEVEL) -> str:
        return self._keys.chunk_id(data)


class Repository(KeyManagement):
    def __init__(self, backend: Backend, config: dict[str, Any], keys: Keys, *,
                 key_file: Path | None = None, opened_with: str = "") -> None:
        self.backend = backend
        self.config = config
        self.keys = keys
        self.key_file = key_file
        self.opened_with = opened_with
        self.index = Index()
        self._writer = PackWriter(backend, keys, self.index)
        self._cache = PackCache(backend)
        self._get_range = getattr(backend, "get_range", None)
        self._zero_ids: dict[int, str] = {}
        self.load_index()

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def init(cls, backend: Backend, *, passphrase: str | None = None,
             key_file: str | os.PathLike[str] | None = None, encrypt: bool = True,
             kdf_params: dict[str, int] | None = None) -> Repository:
        """Create a repository (or open the one already there with the same key material).

        With ``encrypt`` and neither a passphrase nor a key file, the master key is stored
        *unprotected* in ``keys/`` (the data is encrypted but anyone with the repository can
        read it); ``key_status()["protected"]`` says so. Give a passphrase or key file for
        real protection.
        """
        ensure = getattr(backend, "ensure", None)
        if ensure is not None:
            ensure()
        if backend.exists("config"):
            return cls.open(backend, passphrase=passphrase, key_file=key_file)
        kf = Path(key_file) if key_file is not None else None
        return cls._of(backend, opening.create(backend, passphrase, kf, encrypt, kdf_params))

    @classmethod
    def init_replica(cls, backend: Backend, primary: Repository, *,
                     passphrase: str | None = None,
                     key_file: str | os.PathLike[str] | None = None,
                     kdf_params: dict[str, int] | None = None) -> Repository:
        """Create a replica of ``primary``: its own master key (a key file or a passphrase,
        never the primary's), the primary's chunk naming (``opening.create``'s
        ``related``). Refuses a location that already holds a repository that is not one."""
        if passphrase is None and key_file is None:
            raise RepositoryError("a replica needs a key of its own: give it a key file or a "
                                  "passphrase")
        ensure = getattr(backend, "ensure", None)
        if ensure is not None:
            ensure()
        if backend.exists("config"):
            repo = cls.open(backend, passphrase=passphrase, key_file=key_file)
            if repo.config.get("replica_of") != primary.config["id"]:
                raise RepositoryError(
                    f"{backend.describe()} already holds a repository that is not a replica "
                    "of this project's; give the replica an empty location")
            return repo
        kf = Path(key_file) if key_file is not None else None
        related = opening.Opened(primary.config, primary.keys)
        return cls._of(backend, opening.create(backend, passphrase, kf, True, kdf_params,
                                               related))

    @property
    def replica_of(self) -> str | None:
        """The id of the repository this one is a replica of (None: not a replica)."""
        value = self.config.get("replica_of")
        return value if isinstance(value, str) else None

    @classmethod
    def open(cls, backend: Backend, *, passphrase: str | None = None,
             key_file: str | os.PathLike[str] | None = None, key: str | None = None
             ) -> Repository:
        """Open with a passphrase, a key file, an exported key (``key``), or — for an
        unprotected or plaintext repository — nothing."""
        kf = Path(key_file) if key_file is not None else None
        config = opening.read_config(backend)
        return cls._of(backend, opening.unlock(backend, config, passphrase, kf, key))

    @classmethod
    def _of(cls, backend: Backend, o: opening.Opened) -> Repository:
        return cls(backend, o.config, o.keys, key_file=o.key_file, opened_with=o.opened_with)

    # -- index -------------------------------------------------------------------------------

    def load_index(self) -> None:
        """Read index files not loaded yet (new ones from other writers)."""
        docs: dict[str, dict[str, Any]] = {}
        for key in self.backend.list("index/"):
            iid = key.rsplit("/", 1)[-1]
            if self.index.is_read(iid):
                continue
            try:
                raw = self.backend.get(key)
            except NotFoundError:
                continue
            try:
                docs[iid] = parse_file(self.keys, iid, raw)
            except ValueError as e:
                self.index.mark_bad(iid, str(e))
                log.warning("index file %s is damaged: %s", key, e)
        self.index.add_files(docs)

    def reset_index(self) -> None:
        """Forget the in-memory index and read the index files again (after prune)."""
        self.index.clear()
        self._cache = PackCache(self.backend)
        self.load_index()

    def write_index(self, pack_list: PackList, supersedes: list[str] | None = None) -> str:
        """Store an index file naming these packs (and superseding ``supersedes``)."""
        return self._writer.write_index(pack_list, supersedes)

    def stored_size(self) -> tuple[int, int]:
        """(bytes, packs) stored, from the index (new index files read first; the data
        itself is not listed)."""
        self.load_index()
        sizes = self.index.pack_sizes()
        return sum(sizes), len(sizes)

    def has_chunk(self, cid: str) -> bool:
        return self.index.has(cid)

    # -- chunks and blobs --------------------------------------------------------------------

    def chunker(self) -> chunks.Chunker:
        return chunks.Chunker(self.config["chunker"], self.keys.cdc_seed)

    def page_chunker(self, page_size: int) -> PageChunker:
        return PageChunker(self.keys.cdc_seed, page_size)

    def page_writer(self, page_size: int, level: int = chunks.ZSTD_LEVEL) -> BlobWriter:
        """A blob writer cutting only on ``page_size`` boundaries (``pages.py``)."""
        return BlobWriter(self, self.page_chunker(page_size), level)

    def store_chunk(self, data: bytes | memoryview, level: int = chunks.ZSTD_LEVEL) -> str:
        """Store plaintext once; return its ID. Thread-safe and idempotent."""
        return self._writer.store(data, level, None)[0]

    def store(self, data: bytes | memoryview, level: int, user: Any) -> tuple[str, int]:
        """(chunk id, stored bytes newly appended to a pack — 0 for a dedup hit), for the
        session ``user`` (None: a write without a session)."""
        return self._writer.store(data, level, user)

    def store_encoded(self, cid: str, plain: bytes | memoryview, raw_len: int,
                      user: Any) -> int:
        """Store a chunk as ``load_encoded`` gave it (a replica's copy); bytes added."""
        return self._writer.store_encoded(cid, plain, raw_len, user)

    def load_encoded(self, cid: str) -> tuple[bytes, int]:
        """(encoded plaintext, plaintext length) of a chunk: decrypted and authenticated
        (AES-GCM's tag: damaged bytes or another key fail), neither decompressed nor
        hashed — for a copy, whose destination checks the decoded chunk."""
        sealed, length, where = self._sealed(cid)
        if len(sealed) < crypto.OVERHEAD:
            raise IntegrityError(f"chunk {cid} in {where} is truncated: the repository is "
                                 "damaged")
        try:
            return self.keys.unseal(sealed, packs.chunk_ad(cid)), length
        except SealError as e:
            raise IntegrityError(f"chunk {cid} in {where} does not match its hash "
                                 f"({e}): the repository is damaged") from None

    def use_chunks(self, cids: list[str], user: Any) -> list[str]:
        """Record that ``user`` (a session) references these stored chunks; return the
        ones that are not stored."""
        return self.index.claim_many(cids, user)

    def flush(self, check: Callable[[], None] | None = None) -> None:
        """Write the open pack and an index file for every pack not yet indexed.

        ``check`` runs once every pack is written, before the index: a session raises
        there the failure of a pack it used, so its packs stay out of the index."""
        self._writer.flush(check)

    def load_chunk(self, cid: str, raw_len: int | None = None) -> bytes:
        """The plaintext of a chunk, decrypted and hash-checked (IntegrityError naming it)."""
        sealed, length, where = self._sealed(cid)
        return self.decode_chunk(cid, sealed, length, where)

    def load_chunk_view(self, cid: str, scratch: Scratch) -> memoryview:
        """``load_chunk`` decrypted into ``scratch`` (a buffer reused chunk after chunk:
        no fresh, kernel-zeroed mapping per chunk); the view is valid until ``scratch`` is
        used again. Hash-checked the same way."""
        sealed, length, where = self._sealed(cid, scratch)
        data = self._decode(cid, sealed, length, where, scratch.plain(len(sealed)),
                            scratch.decoded(length))
        return data if isinstance(data, memoryview) else memoryview(data)

    def _sealed(self, cid: str, scratch: Scratch | None = None
                ) -> tuple[bytes | memoryview, int, str]:
        """A chunk's sealed bytes, its plaintext length and where they were read."""
        loc = self.index.lookup(cid)
        if loc is None:
            pending = self._writer.pending_chunk(cid)
            if pending is not None:
                return pending[0], pending[1], "an unwritten pack"
            loc = self.index.lookup(cid)  # written meanwhile
        if loc is None:
            bad = self.index.bad_files()
            hint = (f" (index files damaged: {', '.join(sorted(bad))}; run "
                    "repository:check)") if bad else ""
            raise IntegrityError(f"chunk {cid} is missing from the repository at "
                                 f"{self.backend.describe()}{hint}")
        where = packs.pack_key(loc.pack)
        try:
            sealed = (self._read_range(loc.pack, loc.offset, loc.length) if scratch is None
                      else self._read_range_into(loc.pack, loc.offset, scratch.sealed(loc.length)))
        except NotFoundError:
            raise IntegrityError(f"chunk {cid} is missing: its pack {where} is not in the "
                                 f"repository at {self.backend.describe()}") from None
        return sealed, loc.raw_len, where

    def _read_range(self, pack_id: str, offset: int, length: int) -> bytes:
        if self._get_range is not None:
            data: bytes = self._get_range(packs.pack_key(pack_id), offset, length)
            return data
        return self._cache.get(pack_id)[offset:offset + length]

    def _read_range_into(self, pack_id: str, offset: int, buf: memoryview) -> memoryview:
        """``_read_range`` into ``buf`` (ranged backends) or a view of the cached pack."""
        if self._get_range is not None:
            return buf[:get_range_into(self.backend, packs.pack_key(pack_id), offset, buf)]
        return memoryview(self._cache.get(pack_id))[offset:offset + len(buf)]

    def locate_chunk(self, cid: str) -> tuple[str, int, int] | None:
        """(pack key, offset, length) of a chunk's sealed bytes, or None if not indexed
        (flush first). For tools and tests that need to find a chunk's bytes."""
        loc = self.index.lookup(cid)
        return None if loc is None else (packs.pack_key(loc.pack), loc.offset, loc.length)

    def decode_chunk(self, cid: str, sealed: bytes | memoryview, raw_len: int,
                     where: str) -> bytes:
        """The plaintext of a sealed chunk read from ``where``; IntegrityError if damaged."""
        data = self._decode(cid, sealed, raw_len, where, None)
        return data if isinstance(data, bytes) else bytes(data)

    def _decode(self, cid: str, sealed: bytes | memoryview, raw_len: int, where: str,
                out: memoryview | None, decoded: memoryview | None = None
                ) -> bytes | memoryview:
        """Open, decode and hash-check a sealed chunk, decrypted into ``out`` and
        decompressed into ``decoded`` if given."""
        if len(sealed) < crypto.OVERHEAD:
            raise IntegrityError(f"chunk {cid} in {where} is truncated: the repository is "
                                 "damaged")
        ad = packs.chunk_ad(cid)
        try:
            plain = (self.keys.unseal(sealed, ad) if out is None else
                     self.keys.unseal_into(sealed, ad, out))
        except SealError as e:
            raise IntegrityError(f"chunk {cid} in {where} does not match its hash "
                                 f"({e}): the repository is damaged") from None
        try:
            data = (chunks.decode(plain, raw_len) if decoded is None  # raw: a view of plain
                    else chunks.decode_into(memoryview(plain), raw_len, decoded))
        except ValueError as e:
            raise IntegrityError(f"chunk {cid} in {where} {e}") from None
        if len(data) != raw_len or self.keys.chunk_id(data) != cid:
            raise IntegrityError(f"chunk {cid} in {where} does not match its hash")
        return data

    def blob_writer(self, level: int = chunks.ZSTD_LEVEL) -> BlobWriter:
        return BlobWriter(self, self.chunker(), level)

    def digest_writer(self) -> BlobWriter:
        """A blob writer that stores nothing: it cuts and names chunks exactly as
        ``blob_writer`` would, so its ``BlobRef`` equals the one storing the same bytes
        gives (a restored file's content compared with a snapshot's, without a write)."""
        return BlobWriter(_IdOnly(self.keys), self.chunker())

    def chunk_id(self, data: bytes | memoryview) -> str:
        """The id a chunk of these bytes has in this repository (its keyed hash): a
        restore proves a live file equal to a snapshot's by its recorded chunks' ids."""
        return self.keys.chunk_id(data)

    def zero_chunk_id(self, length: int) -> str:
        """The id of a chunk of ``length`` zero bytes (remembered per length): a chunk
        recorded under it holds only zeros, which a reader need not load to know."""
        cid = self._zero_ids.get(length)
        if cid is None:
            cid = self._zero_ids[length] = self.keys.chunk_id(bytes(length))
        return cid

    def put_blob(self, data: bytes) -> BlobRef:
        w = self.blob_writer()
        w.write(data)
        return w.close()

    def open_blob(self, ref: BlobRef) -> BlobReader:
        return BlobReader(self, ref)

    def read_blob(self, ref: BlobRef) -> bytes:
        return b"".join(self.open_blob(ref).iter_chunks())

    def verify_blob(self, ref: BlobRef) -> None:
        """Read and hash-check every chunk of a blob; IntegrityError on the first damage."""
        for cid, length in ref.chunks:
            self.load_chunk(cid, length)

    # -- sessions, locks ---------------------------------------------------------------------

    def begin_snapshot(self, *, lock: bool = True, wait: float = 0.0) -> SnapshotSession:
        """A session that records every chunk the snapshot references (see SnapshotSession)."""
        return SnapshotSession(self, lock=lock, wait=wait)

    def end_session(self, user: Any) -> None:
        """A committed session: the packs it used are referenced, so they are kept."""
        self.index.end_session(user)

    def discard_session(self, user: Any) -> Discarded:
        """What a session that will not commit wrote, removed where nothing else can use it.

        Its packs that no other live session used and that no index file names yet (so no
        other process can have deduplicated against them, and no snapshot references them)
        are deleted, and the open pack is dropped if only it wrote there. Packs already
        indexed stay for ``prune``, which decides from every snapshot's references. Call
        while the session still holds its shared lock.
        """
        return self._writer.discard_session(user)

    def lock(self, exclusive: bool = False, *, wait: float = 0.0,
             refresh_interval: float | None = None) -> RepoLock:
        """A context manager holding ``locks/<id>``; BusyError if it cannot be had in time."""
        return RepoLock(self.backend, exclusive, wait=wait,
                        refresh_interval=REFRESH_S if refresh_interval is None
                        else refresh_interval)

    def release_locks_of(self, host: str, pid: int) -> list[str]:
        """Delete the locks of process ``pid`` on ``host``, known gone (see locks.py)."""
        return release_locks_of(self.backend, host, pid)

    # -- manifests ---------------------------------------------------------------------------

    @staticmethod
    def manifest_key(snapshot_id: str) -> str:
        return f"snapshots/{snapshot_id}"

    def commit_snapshot(self, manifest: SnapshotManifest) -> None:
        """Flush, then write the manifest: after this returns, the snapshot exists.

        Without a session, ``manifest.references`` stays None and prune refuses to run
        while such a snapshot exists (it cannot know what the snapshot needs)."""
        self.flush()
        self.put_manifest(manifest)

    def put_manifest(self, manifest: SnapshotManifest) -> None:
        """Write a manifest as it is (``commit_snapshot`` flushes first)."""
        if "/" in manifest.id or manifest.id.startswith("."):
            raise RepositoryError(f"invalid snapshot id {manifest.id!r}")
        raw = seal_doc(self.keys, json.loads(manifest.to_json()), manifest_ad(manifest.id))
        self.backend.put(self.manifest_key(manifest.id), raw)

    def has_snapshot(self, snapshot_id: str) -> bool:
        return self.backend.exists(self.manifest_key(snapshot_id))

    def snapshot_ids(self) -> Iterator[str]:
        for key in self.backend.list("snapshots/"):
            name = key.rsplit("/", 1)[-1]
            if "." not in name:
                yield name

    def load_snapshot(self, snapshot_id: str) -> SnapshotManifest:
        key = self.manifest_key(snapshot_id)
        try:
            raw = self.backend.get(key)
        except NotFoundError:
            raise NotFoundError(f"snapshot {snapshot_id} is not in the repository") from None
        try:
            data = open_doc(self.keys, raw, manifest_ad(snapshot_id))
            manifest = SnapshotManifest.from_json(json.dumps(data).encode())
        except (ValueError, TypeError) as e:
            raise IntegrityError(f"the manifest of snapshot {snapshot_id} ({key}) is "
                                 f"damaged: {e}") from e
        # A manifest is written after its index files; another process (or another
        # Repository of this one) may have written both since ours was read.
        self.load_index()
        return manifest

    def forget_snapshot(self, snapshot_id: str) -> None:
        """Remove the manifest; its chunks stay until a prune finds them unreferenced."""
        self.backend.delete(self.manifest_key(snapshot_id))

    def load_references(self, manifest: SnapshotManifest) -> set[str] | None:
        """Every chunk id the snapshot needs (incl. its reference list's own chunks), or
        None for a snapshot committed without a session."""
        if manifest.references is None:
            return None
        ref = BlobRef.from_json(manifest.references)
        text = self.read_blob(ref).decode("ascii")
        out = {line for line in text.split("\n") if line}
        out.update(c for c, _n in ref.chunks)
        return out

    # -- maintenance (check.py, prune.py) ----------------------------------------------------

    def verify_snapshot(self, snapshot_id: str, reporter: Reporter | None = None) -> Report:
        return checking.verify_snapshot(self, snapshot_id, reporter)

    def check(self, read_data: bool = False, reporter: Reporter | None = None) -> Report:
        return checking.check(self, read_data, reporter)

    def snapshot_usage(self, snapshot_id: str) -> dict[str, int]:
        return checking.snapshot_usage(self, snapshot_id)

    def plan_prune(self, reporter: Reporter | None = None, *,
                   repack_threshold: float = pruning.REPACK_THRESHOLD,
                   now: datetime | None = None) -> pruning.PrunePlan:
        """What ``prune`` would do now; takes no lock and changes nothing."""
        return pruning.plan(self, reporter, repack_threshold=repack_threshold, now=now)

    def prune(self, reporter: Reporter | None = None, *,
              repack_threshold: float = pruning.REPACK_THRESHOLD, wait: float = 0.0,
              now: datetime | None = None) -> Report:
        """``now``: which snapshots are still restorable (bases whose binlogs stay)."""
        return pruning.prune(self, reporter, repack_threshold=repack_threshold, wait=wait,
                             now=now)

    def rebuild_index(self, reporter: Reporter | None = None) -> Report:
        return pruning.rebuild_index(self, reporter)
