"""Content-addressed snapshot store. Knows nothing about MySQL or mounts."""

from snapkeep.repository.binlogs import (
    BinlogArchive,
    BinlogRecord,
    FollowerLease,
    SegmentWriter,
    follower_running,
)
from snapkeep.repository.blobs import EMPTY_BLOB, BlobReader, BlobRef, BlobWriter
from snapkeep.repository.chunks import ROWS_ZSTD_LEVEL, ZSTD_LEVEL
from snapkeep.repository.manifest import SnapshotManifest
from snapkeep.repository.prune import PrunePlan
from snapkeep.repository.replicate import (
    BinlogCopyResult,
    CopyResult,
    binlogs_to_copy,
    copy_binlogs,
    copy_snapshot,
)
from snapkeep.repository.report import Problem, Report
from snapkeep.repository.repository import Repository
from snapkeep.repository.scratch import ScratchBlobs
from snapkeep.repository.session import SnapshotSession

__all__ = ["EMPTY_BLOB", "BinlogArchive", "BinlogCopyResult", "BinlogRecord", "BlobRef",
           "BlobReader", "BlobWriter", "CopyResult", "FollowerLease", "Problem", "PrunePlan",
           "Report", "ROWS_ZSTD_LEVEL", "Repository", "ScratchBlobs", "SegmentWriter",
           "SnapshotManifest", "SnapshotSession", "ZSTD_LEVEL", "binlogs_to_copy",
           "copy_binlogs", "copy_snapshot", "follower_running"]
