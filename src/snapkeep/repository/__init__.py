"""Content-addressed snapshot store. Knows nothing about MySQL or mounts."""

from snapkeep.repository.blobs import EMPTY_BLOB, BlobReader, BlobRef, BlobWriter
from snapkeep.repository.chunks import ROWS_ZSTD_LEVEL, ZSTD_LEVEL
from snapkeep.repository.maintenance import Problem, Report
from snapkeep.repository.repository import Repository, SnapshotManifest, SnapshotSession

__all__ = ["EMPTY_BLOB", "BlobRef", "BlobReader", "BlobWriter", "Problem", "Report",
           "ROWS_ZSTD_LEVEL", "Repository", "SnapshotManifest", "SnapshotSession", "ZSTD_LEVEL"]
