"""The repository: chunks under ``data/``, snapshot manifests under ``snapshots/``.

Write order is chunks first, manifest last: the manifest's atomic put is the commit
point of a snapshot. A crash before it leaves only unreferenced chunks.
See docs/repository-format.md.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from snapkeep import __version__
from snapkeep.errors import IntegrityError, NotFoundError, RepositoryError
from snapkeep.ids import new_id
from snapkeep.repository import chunks
from snapkeep.repository.blobs import BlobReader, BlobRef, BlobWriter
from snapkeep.storage import Backend

REPO_VERSION = 1


@dataclass
class SnapshotManifest:
    """What a snapshot is. Self-describing: enough to list, verify and restore it."""

    id: str
    project: str
    environment: str
    environment_type: str
    created_at: str  # ISO 8601, UTC
    expires_at: str | None
    live: bool
    automated: bool
    commit_id: str | None
    # service name -> the engine's own description (kind, version, schema, blob refs)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    # mount path (relative to the app root) -> {"tree": BlobRef json, "files": n, "bytes": n}
    mounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    size_bytes: int = 0
    snapkeep_version: str = __version__

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> SnapshotManifest:
        data = json.loads(raw)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class Repository:
    def __init__(self, backend: Backend, config: dict[str, Any]) -> None:
        self.backend = backend
        self.config = config
        self._known: set[str] = set()
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def init(cls, backend: Backend) -> Repository:
        if backend.exists("config"):
            return cls.open(backend)
        config = {"version": REPO_VERSION, "id": new_id(), "chunker": "fixed-1MiB",
                  "hash": "blake3", "compression": "zstd"}
        backend.put("config", json.dumps(config, indent=1).encode())
        return cls(backend, config)

    @classmethod
    def open(cls, backend: Backend) -> Repository:
        try:
            config = json.loads(backend.get("config"))
        except NotFoundError:
            raise RepositoryError(
                f"no snapkeep repository at {backend.describe()}: run `snapkeep init` "
                "or fix `repository` in snapkeep.toml") from None
        except ValueError as e:
            raise RepositoryError(
                f"the repository config at {backend.describe()} is damaged: {e}") from e
        if config.get("version") != REPO_VERSION:
            raise RepositoryError(
                f"repository at {backend.describe()} has format version {config.get('version')}; "
                f"this snapkeep reads version {REPO_VERSION}")
        return cls(backend, config)

    # -- chunks and blobs --------------------------------------------------------------------

    def store_chunk(self, data: bytes) -> str:
        """Store plaintext once; return its ID. Thread-safe and idempotent."""
        cid = chunks.chunk_id(data)
        with self._lock:
            if cid in self._known:
                return cid
        key = chunks.chunk_key(cid)
        if not self.backend.exists(key):
            self.backend.put(key, chunks.encode(data))
        with self._lock:
            self._known.add(cid)
        return cid

    def load_chunk(self, cid: str) -> bytes:
        key = chunks.chunk_key(cid)
        try:
            stored = self.backend.get(key)
        except NotFoundError:
            raise IntegrityError(f"chunk {cid} is missing from the repository "
                                 f"at {self.backend.describe()}") from None
        return chunks.decode(cid, stored, self.backend.describe())

    def blob_writer(self) -> BlobWriter:
        return BlobWriter(self)

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
            if len(self.load_chunk(cid)) != length:
                raise IntegrityError(f"chunk {cid} has the wrong length")

    # -- manifests ---------------------------------------------------------------------------

    @staticmethod
    def _manifest_key(snapshot_id: str) -> str:
        return f"snapshots/{snapshot_id}.json"

    def commit_snapshot(self, manifest: SnapshotManifest) -> None:
        """The commit point: after this returns, the snapshot exists."""
        self.backend.put(self._manifest_key(manifest.id), manifest.to_json())

    def snapshot_ids(self) -> Iterator[str]:
        for key in self.backend.list("snapshots/"):
            name = key.rsplit("/", 1)[-1]
            if name.endswith(".json"):
                yield name[: -len(".json")]

    def load_snapshot(self, snapshot_id: str) -> SnapshotManifest:
        try:
            raw = self.backend.get(self._manifest_key(snapshot_id))
        except NotFoundError:
            raise NotFoundError(f"snapshot {snapshot_id} is not in the repository") from None
        try:
            return SnapshotManifest.from_json(raw)
        except (ValueError, TypeError) as e:
            raise IntegrityError(f"the manifest of snapshot {snapshot_id} is damaged: {e}") from e

    def forget_snapshot(self, snapshot_id: str) -> None:
        """Remove the manifest; its chunks stay until a prune (#3) finds them unreferenced."""
        self.backend.delete(self._manifest_key(snapshot_id))
