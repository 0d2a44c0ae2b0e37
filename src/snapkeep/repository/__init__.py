"""Content-addressed snapshot store. Knows nothing about MySQL or mounts."""

from snapkeep.repository.blobs import BlobReader, BlobRef, BlobWriter
from snapkeep.repository.repository import Repository, SnapshotManifest

__all__ = ["BlobRef", "BlobReader", "BlobWriter", "Repository", "SnapshotManifest"]
