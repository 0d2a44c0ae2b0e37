"""The repository: packs of encrypted chunks, index files, snapshot manifests, key slots.

Write order is packs → index → manifest; the manifest's atomic put is the commit point of
a snapshot. A crash before it leaves only unreferenced packs (and perhaps an index naming
them), which ``prune`` removes. A session that fails removes at once the packs only it
used and no index file names yet (``discard_session``). Nothing is modified in place. See
docs/repository-format.md for every byte.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import blake3

from snapkeep.errors import IntegrityError, NotFoundError, RepositoryError, SnapkeepError
from snapkeep.ids import new_id
from snapkeep.repository import chunks, crypto, keyslots, packs
from snapkeep.repository.blobs import BlobReader, BlobRef, BlobWriter
from snapkeep.repository.crypto import Keys, SealError
from snapkeep.repository.keyslots import KeyManagement
from snapkeep.repository.locks import RepoLock
from snapkeep.repository.manifest import SnapshotManifest, manifest_ad, open_doc, seal_doc
from snapkeep.repository.pack_cache import PackCache
from snapkeep.repository.session import SnapshotSession
from snapkeep.storage import Backend

log = logging.getLogger("snapkeep.repository")

REPO_VERSION = 2
AD_INDEX = b"snapkeep index"
INDEX_MAX_CHUNKS = 50_000  # entries per index file written by prune
AUTO_INDEX_PACKS = 32  # write an index file after this many unindexed packs
UPLOAD_QUEUE = 2  # full packs being written in the background at once (memory bound)


class _IdOnly:
    """A chunk sink that only names chunks (the keyed hash), storing nothing."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys

    def store_chunk(self, data: bytes | memoryview, level: int = chunks.ZSTD_LEVEL) -> str:
        return self._keys.chunk_id(data)


class Location(NamedTuple):
    pack: str
    offset: int
    length: int
    raw_len: int


class Discarded(NamedTuple):
    """What ``discard_session`` removed (``packs``, ``bytes``) and left for prune."""

    packs: int
    bytes: int
    left: int


class Repository(KeyManagement):
    def __init__(self, backend: Backend, config: dict[str, Any], keys: Keys, *,
                 key_file: Path | None = None, opened_with: str = "") -> None:
        self.backend = backend
        self.config = config
        self.keys = keys
        self.key_file = key_file
        self.opened_with = opened_with
        self._mutex = threading.Lock()
        self._flush_lock = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._index: dict[str, Location] = {}
        self._pack_sizes: dict[str, int] = {}
        self._index_files: dict[str, dict[str, Any]] = {}  # id -> {"packs": [...ids]}
        self._bad_indexes: dict[str, str] = {}  # id -> what is wrong
        self._superseded: set[str] = set()
        self._builder = packs.PackBuilder()
        self._pending: dict[str, packs.PackBuilder] = {}
        self._uploading: dict[int, packs.PackBuilder] = {}
        # Packs written by sessions not yet ended -> those sessions (a pack a committed
        # session or a write without a session used is dropped from here: it is kept).
        self._pack_users: dict[str, set[Any]] = {}
        self._unindexed: list[tuple[str, int, list[packs.Entry]]] = []
        self._cache = PackCache(backend)
        self._upload_slots = threading.BoundedSemaphore(UPLOAD_QUEUE)
        self._executor: ThreadPoolExecutor | None = None
        # A background upload's failure for writes without a session (a session gets its
        # own, see SnapshotSession.upload_failed); raised and cleared by ``flush``.
        self._upload_error: BaseException | None = None
        self._get_range = getattr(backend, "get_range", None)
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
        repo_id = new_id()
        config: dict[str, Any] = {
            "version": REPO_VERSION, "id": repo_id,
            "chunker": {"algorithm": "fastcdc2020", "min": chunks.CDC_MIN,
                        "avg": chunks.CDC_AVG, "max": chunks.CDC_MAX, "nc": chunks.CDC_NC},
            "hash": "blake3-keyed", "compression": "zstd", "pack_target": packs.PACK_TARGET,
        }
        if encrypt:
            master = secrets.token_bytes(32)
            keys = Keys.from_master(master)
            config.update(cipher=crypto.CIPHER_AES, kdf="argon2id",
                          key_check=keys.check_value(repo_id))
        else:
            id_key = secrets.token_bytes(32)
            keys = Keys.plaintext(id_key)
            config.update(cipher=crypto.CIPHER_NONE, kdf="none", id_key=id_key.hex())
        kf = Path(key_file) if key_file is not None else None
        if encrypt:
            if kf is not None:
                keyslots.write_key_file(kf, crypto.key_text(master, repo_id))
            if passphrase is not None:
                keyslots.put_slot(backend, crypto.make_passphrase_slot(master, repo_id, passphrase,
                                                               kdf_params))
            if kf is None and passphrase is None:
                keyslots.put_slot(backend, crypto.make_unprotected_slot(master))
                log.warning("repository at %s: the master key is stored unprotected; "
                            "add a passphrase or a key file", backend.describe())
        backend.put("config", json.dumps(config, indent=1, sort_keys=True).encode())
        return cls(backend, config, keys, key_file=kf,
                   opened_with="key file" if kf else "passphrase" if passphrase else "")

    @classmethod
    def open(cls, backend: Backend, *, passphrase: str | None = None,
             key_file: str | os.PathLike[str] | None = None, key: str | None = None
             ) -> Repository:
        """Open with a passphrase, a key file, an exported key (``key``), or — for an
        unprotected or plaintext repository — nothing."""
        where = backend.describe()
        try:
            config = json.loads(backend.get("config"))
        except NotFoundError:
            raise RepositoryError(
                f"no snapkeep repository at {where}: run `snapkeep init` "
                "or fix `repository` in snapkeep.toml") from None
        except ValueError as e:
            raise RepositoryError(f"the repository config at {where} is damaged: {e}") from e
        if not isinstance(config, dict) or config.get("version") != REPO_VERSION:
            version = config.get("version") if isinstance(config, dict) else None
            raise RepositoryError(
                f"repository at {where} has format version {version}; "
                f"this snapkeep reads version {REPO_VERSION}")
        if config.get("cipher") == crypto.CIPHER_NONE:
            return cls(backend, config, Keys.plaintext(bytes.fromhex(config["id_key"])))
        repo_id = config["id"]
        kf = Path(key_file) if key_file is not None else None
        if key is not None or kf is not None:
            if key is not None:
                text, what = key, "the exported key"
            else:
                assert kf is not None
                try:
                    text = kf.read_text()
                except OSError as e:
                    raise RepositoryError(f"cannot read the key file {kf}: {e.strerror}") \
                        from None
                what = f"the key file {kf}"
            try:
                master, _rid = crypto.parse_key_text(text)
            except (ValueError, KeyError, TypeError):
                raise RepositoryError(f"{what} is not a snapkeep key") from None
            keys = Keys.from_master(master)
            if keys.check_value(repo_id) != config.get("key_check"):
                raise RepositoryError(f"{what} is not the key of the repository at {where}")
            return cls(backend, config, keys, key_file=kf,
                       opened_with="key file" if kf else "exported key")
        slots = keyslots.read_slots(backend)
        for kind in ("passphrase", "unprotected") if passphrase is not None \
                else ("unprotected",):
            for _sid, slot in slots.items():
                if slot.get("kind") != kind:
                    continue
                master = crypto.open_slot(slot, repo_id, passphrase)
                if master is None:
                    continue
                keys = Keys.from_master(master)
                if keys.check_value(repo_id) == config.get("key_check"):
                    return cls(backend, config, keys,
                               opened_with="passphrase" if kind == "passphrase" else "")
        if passphrase is not None:
            raise RepositoryError(f"wrong passphrase for the repository at {where}")
        raise RepositoryError(f"the repository at {where} is encrypted: give its passphrase "
                              "or its key file")

    # -- index -------------------------------------------------------------------------------

    def load_index(self) -> None:
        """Read index files not loaded yet (new ones from other writers)."""
        docs: dict[str, dict[str, Any]] = {}
        for key in self.backend.list("index/"):
            iid = key.rsplit("/", 1)[-1]
            if iid in self._index_files or iid in self._bad_indexes:
                continue
            try:
                raw = self.backend.get(key)
            except NotFoundError:
                continue
            try:
                doc = self._parse_index(iid, raw)
            except ValueError as e:
                self._bad_indexes[iid] = str(e)
                log.warning("index file %s is damaged: %s", key, e)
                continue
            docs[iid] = doc
        with self._mutex:
            for doc in docs.values():
                self._superseded.update(doc.get("supersedes", []))
            for iid, doc in docs.items():
                if iid in self._superseded:
                    continue
                self._add_index_doc(iid, doc)
            for iid in list(self._index_files):
                if iid in self._superseded:
                    self._drop_index_file(iid)

    def _parse_index(self, iid: str, raw: bytes) -> dict[str, Any]:
        if blake3.blake3(raw).hexdigest() != iid:
            raise ValueError("its content does not match its name (hash)")
        doc = open_doc(self.keys, raw, AD_INDEX)
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise ValueError("not an index document")
        return doc

    def _add_index_doc(self, iid: str, doc: dict[str, Any]) -> None:
        pack_ids = []
        for p in doc["packs"]:
            pid = p["id"]
            pack_ids.append(pid)
            self._pack_sizes[pid] = int(p["size"])
            for cid, off, length, raw_len in p["chunks"]:
                cur = self._index.get(cid)
                # an indexed copy is preferred to one in a pack a failed session may discard
                if cur is None or cur.pack in self._pack_users:
                    self._index[cid] = Location(pid, off, length, raw_len)
        self._index_files[iid] = {"packs": pack_ids}

    def _drop_index_file(self, iid: str) -> None:
        info = self._index_files.pop(iid, None)
        if not info:
            return
        gone = set(info["packs"])
        still = {p for other in self._index_files.values() for p in other["packs"]}
        gone -= still
        if gone:
            for cid in [c for c, loc in self._index.items() if loc.pack in gone]:
                del self._index[cid]
            for p in gone:
                self._pack_sizes.pop(p, None)

    def stored_size(self) -> tuple[int, int]:
        """(bytes, packs) stored, from the index (new index files read first; the data
        itself is not listed)."""
        self.load_index()
        with self._mutex:
            sizes = list(self._pack_sizes.values())
        return sum(sizes), len(sizes)

    def _reset_index(self) -> None:
        """Forget the in-memory index and read the index files again (after prune)."""
        with self._mutex:
            self._index.clear()
            self._pack_sizes.clear()
            self._index_files.clear()
            self._superseded.clear()
            self._bad_indexes.clear()
        self._cache = PackCache(self.backend)
        self.load_index()

    def _write_index(self, pack_list: list[tuple[str, int, list[packs.Entry]]],
                     supersedes: list[str] = ()) -> str:
        doc = {"version": 1, "supersedes": sorted(supersedes),
               "packs": [{"id": pid, "size": size,
                          "chunks": [[e.cid, e.offset, e.length, e.raw_len] for e in entries]}
                         for pid, size, entries in pack_list]}
        raw = seal_doc(self.keys, doc, AD_INDEX)
        iid = blake3.blake3(raw).hexdigest()
        self.backend.put(f"index/{iid}", raw)
        with self._mutex:
            self._index_files[iid] = {"packs": [p for p, _s, _e in pack_list]}
        return iid

    def has_chunk(self, cid: str) -> bool:
        with self._mutex:
            return cid in self._index or cid in self._pending

    # -- chunks and blobs --------------------------------------------------------------------

    def chunker(self) -> chunks.Chunker:
        return chunks.Chunker(self.config["chunker"], self.keys.cdc_seed)

    def store_chunk(self, data: bytes | memoryview, level: int = chunks.ZSTD_LEVEL) -> str:
        """Store plaintext once; return its ID. Thread-safe and idempotent."""
        return self._store(data, level)[0]

    def _store(self, data: bytes | memoryview, level: int = chunks.ZSTD_LEVEL,
               user: Any = None) -> tuple[str, int]:
        """(chunk id, stored bytes newly appended to a pack — 0 for a dedup hit).

        ``user``: the session storing it (None: a write without a session)."""
        if user is None and self._upload_error is not None:
            raise self._upload_error
        cid = self.keys.chunk_id(data)
        with self._mutex:
            if self._known(cid, user):
                return cid, 0
        sealed = self.keys.seal(chunks.encode(data, level), packs.chunk_ad(cid))
        full = None
        with self._mutex:
            if self._known(cid, user):
                return cid, 0
            b = self._builder
            b.add(cid, sealed, len(data))
            b.users.add(user)
            self._pending[cid] = b
            if b.full():
                full = b
                self._builder = packs.PackBuilder()
                self._uploading[id(b)] = b
        if full is not None:
            self._upload_slots.acquire()  # back-pressure: at most UPLOAD_QUEUE in flight
            try:
                if self._executor is None:
                    with self._mutex:
                        if self._executor is None:
                            self._executor = ThreadPoolExecutor(
                                UPLOAD_QUEUE, thread_name_prefix="snapkeep-pack")
                self._executor.submit(self._upload_in_background, full)
            except BaseException:
                self._upload_slots.release()
                raise
        return cid, len(sealed)

    def _known(self, cid: str, user: Any) -> bool:
        """Whether ``cid`` is stored or being stored; if so ``user`` now uses its pack.
        Call with ``_mutex`` held (what ``discard_session`` decides relies on it)."""
        b = self._pending.get(cid)
        if b is not None:
            b.users.add(user)
            return True
        loc = self._index.get(cid)
        if loc is None:
            return False
        users = self._pack_users.get(loc.pack)
        if users is not None:
            if user is None:
                del self._pack_users[loc.pack]  # a write without a session keeps it
            else:
                users.add(user)
        return True

    def use_chunks(self, cids: list[str], user: Any) -> list[str]:
        """Record that ``user`` (a session) references these stored chunks; return the
        ones that are not stored."""
        with self._mutex:
            return [c for c in cids if not self._known(c, user)]

    def _upload_in_background(self, b: packs.PackBuilder) -> None:
        try:
            self._upload(b)
        except BaseException as e:  # surfaced by its sessions' next store or commit
            if None in b.users:
                self._upload_error = e  # a write without a session: by the next flush
        finally:
            self._upload_slots.release()

    def _upload(self, b: packs.PackBuilder) -> None:
        """Write a finished pack (caller has registered it in ``_uploading``)."""
        try:
            entries = list(b.entries.values())  # b no longer changes: it was swapped out
            pack_id, data = b.build(self.keys)
            self.backend.put(packs.pack_key(pack_id), data)
        except BaseException as e:
            with self._mutex:
                for cid in b.entries:
                    if self._pending.get(cid) is b:
                        del self._pending[cid]
                self._uploading.pop(id(b), None)
                self._cond.notify_all()
            for user in b.users:  # each session that relied on it fails, not later ones
                if user is not None:
                    user.upload_failed(e)
            raise
        with self._mutex:
            for e in entries:
                self._index.setdefault(e.cid, Location(pack_id, e.offset, e.length, e.raw_len))
                if self._pending.get(e.cid) is b:
                    del self._pending[e.cid]
            self._pack_sizes[pack_id] = len(data)
            self._unindexed.append((pack_id, len(data), entries))
            if None not in b.users:
                self._pack_users[pack_id] = set(b.users)
            self._uploading.pop(id(b), None)
            self._cond.notify_all()
            many = len(self._unindexed) >= AUTO_INDEX_PACKS
        if many and self._flush_lock.acquire(blocking=False):
            try:
                self._write_unindexed()
            finally:
                self._flush_lock.release()

    def _write_unindexed(self) -> None:
        with self._mutex:
            todo, self._unindexed = self._unindexed, []
        if not todo:
            return
        try:
            self._write_index(todo)
        except BaseException:
            with self._mutex:
                self._unindexed[:0] = todo
            raise

    def flush(self, check: Callable[[], None] | None = None) -> None:
        """Write the open pack and an index file for every pack not yet indexed.

        ``check`` runs once every pack is written, before the index: a session raises
        there the failure of a pack it used, so its packs stay out of the index."""
        with self._flush_lock:
            with self._mutex:
                b = self._builder if self._builder.entries else None
                if b is not None:
                    self._builder = packs.PackBuilder()
                    self._uploading[id(b)] = b
                waiting = set(self._uploading) - ({id(b)} if b else set())
            if b is not None:
                self._upload(b)
            with self._mutex:
                while waiting & self._uploading.keys():
                    self._cond.wait()
            err, self._upload_error = self._upload_error, None
            if err is not None:
                raise err
            if check is not None:
                check()
            self._write_unindexed()

    def load_chunk(self, cid: str, raw_len: int | None = None) -> bytes:
        """The plaintext of a chunk, decrypted and hash-checked (IntegrityError naming it)."""
        with self._mutex:
            loc = self._index.get(cid)
            b = self._pending.get(cid) if loc is None else None
            sealed = b.sealed_chunk(cid) if b is not None else None
            pending_raw = b.entries[cid].raw_len if b is not None else 0
        if sealed is not None:
            return self._decode_chunk(cid, sealed, pending_raw, "an unwritten pack")
        if loc is None:
            hint = (f" (index files damaged: {', '.join(sorted(self._bad_indexes))}; run "
                    "repository:check)") if self._bad_indexes else ""
            raise IntegrityError(f"chunk {cid} is missing from the repository at "
                                 f"{self.backend.describe()}{hint}")
        where = packs.pack_key(loc.pack)
        try:
            sealed = self._read_range(loc.pack, loc.offset, loc.length)
        except NotFoundError:
            raise IntegrityError(f"chunk {cid} is missing: its pack {where} is not in the "
                                 f"repository at {self.backend.describe()}") from None
        return self._decode_chunk(cid, sealed, loc.raw_len, where)

    def _read_range(self, pack_id: str, offset: int, length: int) -> bytes:
        if self._get_range is not None:
            return self._get_range(packs.pack_key(pack_id), offset, length)
        data = self._cache.get(pack_id)
        return data[offset:offset + length]

    def locate_chunk(self, cid: str) -> tuple[str, int, int] | None:
        """(pack key, offset, length) of a chunk's sealed bytes, or None if not indexed
        (flush first). For tools and tests that need to find a chunk's bytes."""
        with self._mutex:
            loc = self._index.get(cid)
        return None if loc is None else (packs.pack_key(loc.pack), loc.offset, loc.length)

    def _decode_chunk(self, cid: str, sealed: bytes, raw_len: int, where: str) -> bytes:
        if len(sealed) < crypto.OVERHEAD:
            raise IntegrityError(f"chunk {cid} in {where} is truncated: the repository is "
                                 "damaged")
        try:
            plain = self.keys.unseal(sealed, packs.chunk_ad(cid))
        except SealError as e:
            raise IntegrityError(f"chunk {cid} in {where} does not match its hash "
                                 f"({e}): the repository is damaged") from None
        try:
            data = chunks.decode(plain, raw_len)
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
        with self._mutex:
            for pid in [p for p, users in self._pack_users.items() if user in users]:
                del self._pack_users[pid]

    def discard_session(self, user: Any) -> Discarded:
        """What a session that will not commit wrote, removed where nothing else can use it.

        Its packs that no other live session used and that no index file names yet (so no
        other process can have deduplicated against them, and no snapshot references them)
        are deleted, and the open pack is dropped if only it wrote there. Packs already
        indexed stay for ``prune``, which decides from every snapshot's references. Call
        while the session still holds its shared lock.
        """
        with self._mutex:
            while any(user in b.users for b in self._uploading.values()):
                self._cond.wait()  # its packs in flight are written (or failed) first
            b = self._builder
            b.users.discard(user)
            if b.entries and not b.users:
                for cid in b.entries:
                    if self._pending.get(cid) is b:
                        del self._pending[cid]
                self._builder = packs.PackBuilder()
            unused = []
            for pid, users in list(self._pack_users.items()):
                if user in users:
                    users.discard(user)
                    if not users:
                        del self._pack_users[pid]
                        unused.append(pid)
            unindexed = {pid: (size, entries) for pid, size, entries in self._unindexed}
            gone = [pid for pid in unused if pid in unindexed]
            self._unindexed = [item for item in self._unindexed if item[0] not in gone]
            for pid in gone:
                for e in unindexed[pid][1]:
                    loc = self._index.get(e.cid)
                    if loc is not None and loc.pack == pid:
                        del self._index[e.cid]
                del self._pack_sizes[pid]
        out = Discarded(0, 0, len(unused) - len(gone))
        for pid in gone:
            try:
                self.backend.delete(packs.pack_key(pid))
            except SnapkeepError as e:  # storage still failing: a pack in no index, for prune
                log.warning("could not delete %s of a failed snapshot: %s",
                            packs.pack_key(pid), e)
                out = out._replace(left=out.left + 1)
                continue
            out = out._replace(packs=out.packs + 1, bytes=out.bytes + unindexed[pid][0])
        return out

    def lock(self, exclusive: bool = False, *, wait: float = 0.0,
             refresh_interval: float | None = None) -> RepoLock:
        """A context manager holding ``locks/<id>``; BusyError if it cannot be had in time."""
        kw = {} if refresh_interval is None else {"refresh_interval": refresh_interval}
        return RepoLock(self.backend, exclusive, wait=wait, **kw)

    # -- manifests ---------------------------------------------------------------------------

    @staticmethod
    def _manifest_key(snapshot_id: str) -> str:
        return f"snapshots/{snapshot_id}"

    def commit_snapshot(self, manifest: SnapshotManifest) -> None:
        """Flush, then write the manifest: after this returns, the snapshot exists.

        Without a session, ``manifest.references`` stays None and prune refuses to run
        while such a snapshot exists (it cannot know what the snapshot needs)."""
        self.flush()
        self._put_manifest(manifest)

    def _put_manifest(self, manifest: SnapshotManifest) -> None:
        if "/" in manifest.id or manifest.id.startswith("."):
            raise RepositoryError(f"invalid snapshot id {manifest.id!r}")
        raw = seal_doc(self.keys, json.loads(manifest.to_json()), manifest_ad(manifest.id))
        self.backend.put(self._manifest_key(manifest.id), raw)

    def snapshot_ids(self) -> Iterator[str]:
        for key in self.backend.list("snapshots/"):
            name = key.rsplit("/", 1)[-1]
            if "." not in name:
                yield name

    def load_snapshot(self, snapshot_id: str) -> SnapshotManifest:
        key = self._manifest_key(snapshot_id)
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
        self.backend.delete(self._manifest_key(snapshot_id))

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

    # -- maintenance (see maintenance.py) ----------------------------------------------------

    def verify_snapshot(self, snapshot_id: str, reporter: Any = None) -> Any:
        from snapkeep.repository import maintenance

        return maintenance.verify_snapshot(self, snapshot_id, reporter)

    def check(self, read_data: bool = False, reporter: Any = None) -> Any:
        from snapkeep.repository import maintenance

        return maintenance.check(self, read_data, reporter)

    def prune(self, reporter: Any = None, *, repack_threshold: float = 0.05,
              wait: float = 0.0) -> Any:
        from snapkeep.repository import maintenance

        return maintenance.prune(self, reporter, repack_threshold=repack_threshold, wait=wait)

    def snapshot_usage(self, snapshot_id: str) -> dict[str, int]:
        from snapkeep.repository import maintenance

        return maintenance.snapshot_usage(self, snapshot_id)

    def rebuild_index(self, reporter: Any = None) -> Any:
        from snapkeep.repository import maintenance

        return maintenance.rebuild_index(self, reporter)
