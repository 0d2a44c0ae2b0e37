"""Writing chunks into packs: the open pack, background uploads, index files for new packs.

``PackWriter`` is shared by all the threads using one ``Repository``. Its lock protects the
open pack, the packs being uploaded and the packs not yet named by an index file; it is
always taken before the ``Index``'s lock, never while holding it.
"""

from __future__ import annotations

import logging
import mmap
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from snapkeep.errors import SnapkeepError
from snapkeep.malloc import lazy_buffer
from snapkeep.repository import chunks, packs
from snapkeep.repository.crypto import Keys
from snapkeep.repository.index import Index, PackList, seal_file
from snapkeep.storage import Backend

log = logging.getLogger("snapkeep.repository")

AUTO_INDEX_PACKS = 32  # write an index file after this many unindexed packs
UPLOAD_QUEUE = 2  # full packs being written in the background at once (memory bound)


class Discarded(NamedTuple):
    """What ``discard_session`` removed (``packs``, ``bytes``) and left for prune."""

    packs: int
    bytes: int
    left: int


class PackWriter:
    def __init__(self, backend: Backend, keys: Keys, index: Index) -> None:
        self.backend = backend
        self.keys = keys
        self.index = index
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._flush_lock = threading.Lock()
        # Pack buffers kept for reuse: a fresh 16 MiB buffer per pack would be mapped and
        # zeroed page by page again (glibc's mmap threshold is fixed, see snapkeep.malloc).
        # Reading or writing a pack buffer always holds the lock, except the upload of a
        # pack that was swapped out (no longer written); it returns the buffer here.
        self._spare: list[mmap.mmap] = []
        self._builder = self._new_builder()
        self._uploading: dict[int, packs.PackBuilder] = {}
        self._unindexed: PackList = []
        self._upload_slots = threading.BoundedSemaphore(UPLOAD_QUEUE)
        self._executor: ThreadPoolExecutor | None = None
        # A background upload's failure for writes without a session (a session gets its
        # own, see SnapshotSession.upload_failed); raised and cleared by ``flush``.
        self._upload_error: BaseException | None = None

    def store(self, data: bytes | memoryview, level: int, user: Any) -> tuple[str, int]:
        """(chunk id, stored bytes newly appended to a pack — 0 for a dedup hit).

        ``user``: the session storing it (None: a write without a session)."""
        if user is None and self._upload_error is not None:
            # reported once, to the next write: a long-lived process (worker, server)
            # whose storage came back must not fail every later write with it
            err, self._upload_error = self._upload_error, None
            raise err
        cid = self.keys.chunk_id(data)
        if self.index.claim(cid, user):
            return cid, 0
        plain = chunks.encode_reused(data, level)  # this thread's buffer, until the seal
        return cid, self._append(cid, plain, len(data), user)

    def store_encoded(self, cid: str, plain: bytes | memoryview, raw_len: int,
                      user: Any) -> int:
        """``store`` of a chunk already named and encoded (a copy from a repository that
        names chunks alike, its encoded bytes authenticated there): sealed as it is, no
        hashing or compression here; the stored bytes newly appended (0: held already)."""
        if self.index.claim(cid, user):
            return 0
        return self._append(cid, plain, raw_len, user)

    def _append(self, cid: str, plain: bytes | memoryview, raw_len: int, user: Any) -> int:
        """Seal ``plain`` into the open pack unless another writer added ``cid`` since the
        caller's claim; hand a full pack to the uploads. The bytes appended (0: none)."""
        with self._lock:  # no other writer can add cid between this claim and the add
            if self.index.claim(cid, user):
                return 0
            b = self._builder
            # sealed straight into the open pack's buffer (AES-GCM holds the GIL anyway)
            sealed = b.seal(self.keys, cid, plain, raw_len)
            self.index.add_pending(cid, b, user)
            full = b.full()
            if full:
                self._builder = self._new_builder()
                self._uploading[id(b)] = b
        if full:
            self._upload_slots.acquire()  # back-pressure: at most UPLOAD_QUEUE in flight
            try:
                self._pool().submit(self._upload_in_background, b)
            except BaseException:
                self._upload_slots.release()
                raise
        return sealed

    def _new_builder(self) -> packs.PackBuilder:
        """(caller holds the lock, or is __init__)"""
        return packs.PackBuilder(self._spare.pop() if self._spare else lazy_buffer(packs.BUFFER))

    def _recycle(self, b: packs.PackBuilder) -> None:
        """(caller holds the lock) ``b`` is written or dropped: nothing reads its buffer."""
        buf, b.buf = b.buf, bytearray()
        if isinstance(buf, mmap.mmap) and len(buf) == packs.BUFFER \
                and len(self._spare) <= UPLOAD_QUEUE:
            self._spare.append(buf)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(UPLOAD_QUEUE,
                                                    thread_name_prefix="snapkeep-pack")
            return self._executor

    def pending_chunk(self, cid: str) -> tuple[bytes, int] | None:
        """(sealed bytes, plaintext length) of a chunk in a pack not written yet."""
        with self._lock:  # the open pack's buffer grows under this lock
            b = self.index.pending(cid)
            return None if b is None else (b.sealed_chunk(cid), b.entries[cid].raw_len)

    def _upload_in_background(self, b: packs.PackBuilder) -> None:
        try:
            self._upload(b)
        except BaseException as e:  # surfaced by its sessions' next store or commit
            if None in self.index.users_of(b):
                self._upload_error = e  # a write without a session: by the next flush
        finally:
            self._upload_slots.release()

    def _upload(self, b: packs.PackBuilder) -> None:
        """Write a finished pack (caller has registered it in ``_uploading``)."""
        try:
            entries = list(b.entries.values())  # b no longer changes: it was swapped out
            pack_id, data = b.build_in_place(self.keys)
            size = len(data)
            try:
                # a view of the reused buffer: backends write or copy it before returning
                # (tests/integration/storage: test_put_takes_a_view_...)
                self.backend.put(packs.pack_key(pack_id), data)  # type: ignore[arg-type]
            finally:
                data.release()
        except BaseException as failure:
            self.index.drop_pending(b)
            with self._lock:
                self._uploading.pop(id(b), None)
                self._recycle(b)
                self._cond.notify_all()
            for user in self.index.users_of(b):  # each session that relied on it fails
                if user is not None:
                    user.upload_failed(failure)
            raise
        self.index.pack_written(pack_id, size, b)
        with self._lock:
            self._unindexed.append((pack_id, size, entries))
            self._uploading.pop(id(b), None)
            self._recycle(b)
            self._cond.notify_all()
            many = len(self._unindexed) >= AUTO_INDEX_PACKS
        if many and self._flush_lock.acquire(blocking=False):
            try:
                self._write_unindexed()
            finally:
                self._flush_lock.release()

    def write_index(self, pack_list: PackList, supersedes: list[str] | None = None) -> str:
        """Store an index file naming ``pack_list`` (and superseding ``supersedes``)."""
        iid, raw = seal_file(self.keys, pack_list, supersedes or [])
        self.backend.put(f"index/{iid}", raw)
        self.index.file_written(iid, [p for p, _s, _e in pack_list])
        return iid

    def _write_unindexed(self) -> None:
        with self._lock:
            todo, self._unindexed = self._unindexed, []
        if not todo:
            return
        try:
            self.write_index(todo)
        except BaseException:
            with self._lock:
                self._unindexed[:0] = todo
            raise

    def flush(self, check: Callable[[], None] | None = None) -> None:
        """Write the open pack and an index file for every pack not yet indexed.

        ``check`` runs once every pack is written, before the index: a session raises
        there the failure of a pack it used, so its packs stay out of the index."""
        with self._flush_lock:
            with self._lock:
                b = self._builder if self._builder.entries else None
                if b is not None:
                    self._builder = self._new_builder()
                    self._uploading[id(b)] = b
                waiting = set(self._uploading) - ({id(b)} if b else set())
            if b is not None:
                self._upload(b)
            with self._lock:
                while waiting & self._uploading.keys():
                    self._cond.wait()
            err, self._upload_error = self._upload_error, None
            if err is not None:
                raise err
            if check is not None:
                check()
            self._write_unindexed()
            self._unmap_spares()

    def _unmap_spares(self) -> None:
        """A long-lived process keeps no idle pack buffers once its writes are flushed
        (the next snapshot maps them again: a few page faults per pack buffer)."""
        with self._lock:
            self._spare.clear()
            if not self._builder.entries:  # a reused buffer holds its pages: a fresh one
                self._builder = packs.PackBuilder(lazy_buffer(packs.BUFFER))

    def discard_session(self, user: Any) -> Discarded:
        """Remove what a session that will not commit wrote where nothing else can use it
        (see ``Repository.discard_session``)."""
        with self._lock:
            while any(self.index.uses(b, user) for b in self._uploading.values()):
                self._cond.wait()  # its packs in flight are written (or failed) first
            if self.index.release_builder(self._builder, user):
                self._recycle(self._builder)
                self._builder = self._new_builder()
            unindexed = {pid: (size, entries) for pid, size, entries in self._unindexed}
            gone, left = self.index.discard_session(
                user, {pid: entries for pid, (_s, entries) in unindexed.items()})
            self._unindexed = [item for item in self._unindexed if item[0] not in gone]
        out = Discarded(0, 0, left)
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
