"""The snapshot manifest and the sealed JSON documents (manifests, index files)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from snapkeep import __version__
from snapkeep.repository import chunks
from snapkeep.repository.crypto import Keys, SealError


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
    # BlobRef json of the sorted list of every chunk id the snapshot references (sessions)
    references: dict[str, Any] | None = None
    # stored bytes (compressed + sealed) this snapshot newly wrote to packs
    added_bytes: int = 0

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> SnapshotManifest:
        data = json.loads(raw)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


# -- sealed JSON documents (index files, manifests) ---------------------------------------


def seal_doc(keys: Keys, obj: Any, ad: bytes) -> bytes:
    return keys.seal(chunks.encode(json.dumps(obj, sort_keys=True).encode()), ad)


def open_doc(keys: Keys, raw: bytes, ad: bytes) -> Any:
    """The JSON document in a sealed object; ValueError saying what is wrong."""
    try:
        plain = keys.unseal(raw, ad)
    except SealError as e:
        raise ValueError(f"fails authentication ({e}): damaged or not this repository's") \
            from None
    return json.loads(chunks.decode(plain, 1 << 31))


def manifest_ad(snapshot_id: str) -> bytes:
    return b"snapkeep manifest " + snapshot_id.encode()
