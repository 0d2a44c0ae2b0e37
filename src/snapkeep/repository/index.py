"""The in-memory index: where every chunk is, in one object with one lock (restic's MasterIndex).

``Index`` holds the lookup tables — chunk id → ``Location`` for indexed and written packs,
chunk id → the ``PackBuilder`` of a pack not written yet, pack sizes, the index files read
(and the damaged and superseded ones), and which live sessions use which not-yet-kept packs.
Its lock protects exactly these tables; every method takes it itself and never calls out
while holding it, so callers may hold their own lock around a call (the pack writer does:
its lock is always taken before this one, never after). An ``Index`` is shared by all the
threads using one ``Repository``.

Index files (``index/<blake3 of the file>``) are sealed JSON documents, see
docs/repository-format.md; ``parse_file``/``seal_file`` read and write them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import blake3

from snapkeep.repository.crypto import Keys
from snapkeep.repository.manifest import open_doc, seal_doc
from snapkeep.repository.packs import Entry, PackBuilder

AD_INDEX = b"snapkeep index"
INDEX_MAX_CHUNKS = 50_000  # entries per index file written by prune

PackList = list[tuple[str, int, list[Entry]]]  # (pack id, size, its entries)


class Location(NamedTuple):
    pack: str
    offset: int
    length: int
    raw_len: int


@dataclass(frozen=True)
class IndexView:
    """A copy of the index tables at one moment (for prune, which changes them)."""

    locations: dict[str, Location]
    pack_sizes: dict[str, int]
    files: set[str]  # index files loaded, and the superseded ones still stored
    superseded: set[str]


def parse_file(keys: Keys, iid: str, raw: bytes) -> dict[str, Any]:
    """An index file's document; ValueError naming what is wrong."""
    if blake3.blake3(raw).hexdigest() != iid:
        raise ValueError("its content does not match its name (hash)")
    doc = open_doc(keys, raw, AD_INDEX)
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise ValueError("not an index document")
    return doc


def seal_file(keys: Keys, pack_list: PackList, supersedes: Iterable[str] = ()
              ) -> tuple[str, bytes]:
    """(index file id, its bytes) naming ``pack_list`` and the files it supersedes."""
    doc = {"version": 1, "supersedes": sorted(supersedes),
           "packs": [{"id": pid, "size": size,
                      "chunks": [[e.cid, e.offset, e.length, e.raw_len] for e in entries]}
                     for pid, size, entries in pack_list]}
    raw = seal_doc(keys, doc, AD_INDEX)
    return blake3.blake3(raw).hexdigest(), raw


class Index:
    """Where each chunk is: in a written pack, or in a pack being built. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locations: dict[str, Location] = {}
        self._pack_sizes: dict[str, int] = {}
        self._files: dict[str, list[str]] = {}  # index file id -> the packs it names
        self._bad: dict[str, str] = {}  # index file id -> what is wrong with it
        self._superseded: set[str] = set()
        self._pending: dict[str, PackBuilder] = {}
        # Packs written by sessions not yet ended -> those sessions (a pack a committed
        # session or a write without a session used is dropped from here: it is kept).
        self._pack_users: dict[str, set[Any]] = {}

    # -- index files ---------------------------------------------------------------------

    def is_read(self, iid: str) -> bool:
        """Whether an index file was read already (loaded, or found damaged)."""
        with self._lock:
            return iid in self._files or iid in self._bad

    def mark_bad(self, iid: str, why: str) -> None:
        with self._lock:
            self._bad[iid] = why

    def bad_files(self) -> dict[str, str]:
        """Damaged index files read: id -> what is wrong."""
        with self._lock:
            return dict(self._bad)

    def add_files(self, docs: dict[str, dict[str, Any]]) -> None:
        """Index files read from storage: add what they name, drop what they supersede."""
        with self._lock:
            for doc in docs.values():
                self._superseded.update(doc.get("supersedes", []))
            for iid, doc in docs.items():
                if iid not in self._superseded:
                    self._add_doc(iid, doc)
            for iid in [i for i in self._files if i in self._superseded]:
                self._drop_file(iid)

    def _add_doc(self, iid: str, doc: dict[str, Any]) -> None:
        pack_ids = []
        for p in doc["packs"]:
            pid = p["id"]
            pack_ids.append(pid)
            self._pack_sizes[pid] = int(p["size"])
            for cid, off, length, raw_len in p["chunks"]:
                cur = self._locations.get(cid)
                # an indexed copy is preferred to one in a pack a failed session may discard
                if cur is None or cur.pack in self._pack_users:
                    self._locations[cid] = Location(pid, off, length, raw_len)
        self._files[iid] = pack_ids

    def _drop_file(self, iid: str) -> None:
        gone = set(self._files.pop(iid, ()))
        gone -= {p for packs in self._files.values() for p in packs}
        if gone:
            for cid in [c for c, loc in self._locations.items() if loc.pack in gone]:
                del self._locations[cid]
            for p in gone:
                self._pack_sizes.pop(p, None)

    def file_written(self, iid: str, pack_ids: list[str]) -> None:
        """This process wrote an index file naming these (already known) packs."""
        with self._lock:
            self._files[iid] = list(pack_ids)

    def clear(self) -> None:
        """Forget every index file read (after prune or a rebuild, before reading again)."""
        with self._lock:
            self._locations.clear()
            self._pack_sizes.clear()
            self._files.clear()
            self._superseded.clear()
            self._bad.clear()

    def view(self) -> IndexView:
        with self._lock:
            return IndexView(dict(self._locations), dict(self._pack_sizes),
                             set(self._files) | self._superseded, set(self._superseded))

    def pack_sizes(self) -> list[int]:
        with self._lock:
            return list(self._pack_sizes.values())

    # -- chunks --------------------------------------------------------------------------

    def lookup(self, cid: str) -> Location | None:
        with self._lock:
            return self._locations.get(cid)

    def lookup_many(self, cids: Iterable[str]) -> dict[str, Location | None]:
        with self._lock:
            return {c: self._locations.get(c) for c in cids}

    def not_written(self, cids: Iterable[str]) -> list[str]:
        """The chunks of ``cids`` in no written pack."""
        with self._lock:
            return [c for c in cids if c not in self._locations]

    def has(self, cid: str) -> bool:
        """Whether a chunk is stored or being stored."""
        with self._lock:
            return cid in self._locations or cid in self._pending

    def pending(self, cid: str) -> PackBuilder | None:
        """The builder of the unwritten pack holding ``cid``, if it is in one."""
        with self._lock:
            return self._pending.get(cid)

    def claim(self, cid: str, user: Any) -> bool:
        """Whether ``cid`` is stored or being stored; if so ``user`` now uses its pack
        (``user``: a session, or None for a write without one, which keeps the pack)."""
        with self._lock:
            return self._claim(cid, user)

    def claim_many(self, cids: Iterable[str], user: Any) -> list[str]:
        """``claim`` for each chunk; the ones that are not stored."""
        with self._lock:
            return [c for c in cids if not self._claim(c, user)]

    def _claim(self, cid: str, user: Any) -> bool:
        if cid in self._pending:
            self._pending[cid].users.add(user)
            return True
        loc = self._locations.get(cid)
        if loc is not None and loc.pack in self._pack_users:
            if user is None:
                del self._pack_users[loc.pack]  # a write without a session keeps it
            else:
                self._pack_users[loc.pack].add(user)
        return loc is not None

    # -- packs being built and written ---------------------------------------------------

    def add_pending(self, cid: str, builder: PackBuilder, user: Any) -> None:
        """``user`` added ``cid`` to the pack ``builder`` is building."""
        with self._lock:
            builder.users.add(user)
            self._pending[cid] = builder

    def users_of(self, builder: PackBuilder) -> set[Any]:
        with self._lock:
            return set(builder.users)

    def uses(self, builder: PackBuilder, user: Any) -> bool:
        with self._lock:
            return user in builder.users

    def drop_pending(self, builder: PackBuilder) -> None:
        """The pack ``builder`` built will not be written: forget its chunks."""
        with self._lock:
            self._drop_pending(builder)

    def _drop_pending(self, builder: PackBuilder) -> None:
        for cid in builder.entries:
            if self._pending.get(cid) is builder:
                del self._pending[cid]

    def release_builder(self, builder: PackBuilder, user: Any) -> bool:
        """``user`` no longer needs the open pack; True (and its chunks forgotten) if no
        one else does and it holds chunks, so the caller drops it."""
        with self._lock:
            builder.users.discard(user)
            if builder.entries and not builder.users:
                self._drop_pending(builder)
                return True
            return False

    def pack_written(self, pack_id: str, size: int, builder: PackBuilder) -> None:
        """The pack ``builder`` built is stored as ``pack_id`` (not yet in an index file)."""
        with self._lock:
            for e in builder.entries.values():
                self._locations.setdefault(e.cid, Location(pack_id, e.offset, e.length,
                                                           e.raw_len))
            self._drop_pending(builder)
            self._pack_sizes[pack_id] = size
            if None not in builder.users:
                self._pack_users[pack_id] = set(builder.users)

    # -- sessions ------------------------------------------------------------------------

    def end_session(self, user: Any) -> None:
        """A committed session: the packs it used are referenced, so they are kept."""
        with self._lock:
            for pid in [p for p, users in self._pack_users.items() if user in users]:
                del self._pack_users[pid]

    def discard_session(self, user: Any, unindexed: dict[str, list[Entry]]
                        ) -> tuple[list[str], int]:
        """A session that will not commit: (packs of ``unindexed`` only it used, now
        forgotten for the caller to delete; how many other packs only it used are left
        for prune because an index file names them)."""
        with self._lock:
            unused = []
            for pid, users in list(self._pack_users.items()):
                if user in users:
                    users.discard(user)
                    if not users:
                        del self._pack_users[pid]
                        unused.append(pid)
            gone = [pid for pid in unused if pid in unindexed]
            for pid in gone:
                for e in unindexed[pid]:
                    loc = self._locations.get(e.cid)
                    if loc is not None and loc.pack == pid:
                        del self._locations[e.cid]
                del self._pack_sizes[pid]
        return gone, len(unused) - len(gone)
