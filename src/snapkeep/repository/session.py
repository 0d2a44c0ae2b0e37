"""A snapshot being written: it records every chunk the snapshot references."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from snapkeep.errors import IntegrityError, RepositoryError
from snapkeep.repository.blobs import EMPTY_BLOB, BlobReader, BlobRef, BlobWriter
from snapkeep.repository.chunks import ZSTD_LEVEL, Chunker
from snapkeep.repository.index import Index
from snapkeep.repository.locks import RepoLock
from snapkeep.repository.manifest import SnapshotManifest
from snapkeep.repository.pages import PageChunker
from snapkeep.repository.writer import Discarded
from snapkeep.storage import Backend


class SessionRepository(Protocol):
    """What a session needs of the ``Repository`` (a Protocol: this module does not import
    repository.py, which imports it)."""

    backend: Backend
    index: Index

    def lock(self, exclusive: bool = False, *, wait: float = 0.0) -> RepoLock: ...
    def load_index(self) -> None: ...
    def chunker(self) -> Chunker: ...
    def page_chunker(self, page_size: int) -> PageChunker: ...
    def store(self, data: bytes | memoryview, level: int, user: Any) -> tuple[str, int]: ...
    def store_encoded(self, cid: str, plain: bytes | memoryview, raw_len: int,
                      user: Any) -> int: ...
    def use_chunks(self, cids: list[str], user: Any) -> list[str]: ...
    def flush(self, check: Callable[[], None] | None = None) -> None: ...
    def load_chunk(self, cid: str, raw_len: int | None = None) -> bytes: ...
    def open_blob(self, ref: BlobRef) -> BlobReader: ...
    def read_blob(self, ref: BlobRef) -> bytes: ...
    def has_snapshot(self, snapshot_id: str) -> bool: ...
    def put_manifest(self, manifest: SnapshotManifest) -> None: ...
    def end_session(self, user: Any) -> None: ...
    def discard_session(self, user: Any) -> Discarded: ...


class SnapshotSession:
    """Writes one snapshot: every chunk stored (or found already stored) through it, and
    every blob announced with ``add_ref``, is recorded; ``commit`` stores that list.

    Holds a shared repository lock from creation to ``commit``/``close`` (so prune cannot
    delete what the snapshot dedups against). Thread-safe: writers in several threads.

    A storage failure belongs to the sessions whose chunks it lost: it is raised by their
    next store and their commit, never by a later session of the same Repository. Closed
    without a commit, a session removes the packs only it wrote (``discarded`` says what).
    """

    def __init__(self, repo: SessionRepository, *, lock: bool = True, wait: float = 0.0) -> None:
        self.repo = repo
        self._refs: set[str] = set()
        self._added = 0
        self._mutex = threading.Lock()
        self._lock = repo.lock(exclusive=False, wait=wait).acquire() if lock else None
        self.committed = False
        self.discarded: Discarded | None = None
        self._error: BaseException | None = None
        self._manifest_written = False  # attempted: from then on nothing is discarded
        repo.load_index()  # dedup against what other writers stored since open

    # writing
    def store_chunk(self, data: bytes | memoryview, level: int = ZSTD_LEVEL) -> str:
        self._raise_failure()
        cid, added = self.repo.store(data, level, self)
        with self._mutex:
            self._refs.add(cid)
            self._added += added
        return cid

    def blob_writer(self, level: int = ZSTD_LEVEL) -> BlobWriter:
        return BlobWriter(self, self.repo.chunker(), level)

    def page_writer(self, page_size: int, level: int = ZSTD_LEVEL) -> BlobWriter:
        """A blob writer cutting only on ``page_size`` boundaries (``pages.py``)."""
        return BlobWriter(self, self.repo.page_chunker(page_size), level)

    def put_blob(self, data: bytes) -> BlobRef:
        w = self.blob_writer()
        w.write(data)
        return w.close()

    def add_ref(self, ref: BlobRef) -> None:
        """A blob reused from an earlier snapshot without rewriting it."""
        missing = self.repo.use_chunks([c for c, _n in ref.chunks], self)
        if missing:
            raise IntegrityError(f"chunk {missing[0]} of a reused blob is missing from the "
                                 f"repository at {self.repo.backend.describe()}")
        with self._mutex:
            self._refs.update(c for c, _n in ref.chunks)

    def store_encoded(self, cid: str, plain: bytes | memoryview, raw_len: int) -> None:
        """A chunk copied as its source repository encoded it (``Repository.load_encoded``):
        the caller vouches for ``cid`` naming it; a copy reads it back before committing."""
        self._raise_failure()
        added = self.repo.store_encoded(cid, plain, raw_len, self)
        with self._mutex:
            self._refs.add(cid)
            self._added += added

    def reuse_chunks(self, cids: list[str]) -> list[str]:
        """Record as referenced those of ``cids`` the repository stores (a copy's dedup);
        return the others, which the caller stores through this session."""
        missing = self.repo.use_chunks(cids, self)
        absent = set(missing)
        with self._mutex:
            self._refs.update(c for c in cids if c not in absent)
        return missing

    def upload_failed(self, error: BaseException) -> None:
        """A pack holding chunks of this snapshot could not be written (Repository calls)."""
        if self._error is None:
            self._error = error

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    @property
    def added_bytes(self) -> int:
        return self._added

    # reading (engines read parents through the same object)
    def load_chunk(self, cid: str, raw_len: int | None = None) -> bytes:
        return self.repo.load_chunk(cid, raw_len)

    def open_blob(self, ref: BlobRef) -> BlobReader:
        return self.repo.open_blob(ref)

    def read_blob(self, ref: BlobRef) -> bytes:
        return self.repo.read_blob(ref)

    def commit(self, manifest: SnapshotManifest) -> SnapshotManifest:
        """Store the reference list, flush packs and index, write the manifest, unlock."""
        if self.committed:
            raise RepositoryError("this snapshot session is already committed")
        if self.repo.has_snapshot(manifest.id):
            raise RepositoryError(f"a snapshot named {manifest.id} already exists in the "
                                  f"repository at {self.repo.backend.describe()}; not replaced")
        with self._mutex:
            ids = sorted(self._refs)
        refs = (self.put_blob("".join(f"{c}\n" for c in ids).encode()) if ids else EMPTY_BLOB)
        self.repo.flush(check=self._raise_failure)
        absent = self.repo.index.not_written(ids)
        if absent:
            raise RepositoryError(f"chunk {absent[0]} of this snapshot was not written to "
                                  f"the repository at {self.repo.backend.describe()}")
        manifest.references = refs.to_json()
        manifest.added_bytes = self._added
        self._manifest_written = True
        self.repo.put_manifest(manifest)
        self.committed = True
        self.repo.end_session(self)
        self.close()
        return manifest

    def commit_with(self, write: Callable[[], Any]) -> Any:
        """Commit another kind of document than a manifest (an archived binlog segment):
        flush packs and index, check every chunk stored through this session is written,
        then call ``write`` (the commit point) and end the session; ``write``'s result."""
        if self.committed:
            raise RepositoryError("this session is already committed")
        with self._mutex:
            ids = sorted(self._refs)
        self.repo.flush(check=self._raise_failure)
        absent = self.repo.index.not_written(ids)
        if absent:
            raise RepositoryError(f"chunk {absent[0]} was not written to the repository at "
                                  f"{self.repo.backend.describe()}")
        self._manifest_written = True
        result = write()
        self.committed = True
        self.repo.end_session(self)
        self.close()
        return result

    def close(self) -> None:
        """Release the lock; uncommitted, first remove what only this session wrote."""
        try:
            if not self.committed and not self._manifest_written and self.discarded is None:
                self.discarded = self.repo.discard_session(self)
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> SnapshotSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
