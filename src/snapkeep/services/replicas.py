"""Replicas: creating one (``replica:init``), copying snapshots to it (the
``environment.backup.copy`` activity's work), and which replicas hold a snapshot.

A replica is another repository with its own master key (``[replicas.NAME]``); the copy
itself lives in the repository (``copy_snapshot``). docs/offsite.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from snapkeep.config import EnvironmentConfig, ReplicaConfig
from snapkeep.errors import SnapkeepError
from snapkeep.progress import Reporter
from snapkeep.repository import (
    BinlogCopyResult,
    CopyResult,
    Repository,
    binlogs_to_copy,
    copy_binlogs,
    copy_snapshot,
)
from snapkeep.services.context import Context
from snapkeep.services.sizes import mib
from snapkeep.services.snapshots import listing as snapshots
from snapkeep.services.snapshots.integrity import require_project_admin

COPY = "environment.backup.copy"


@dataclass(frozen=True)
class ReplicaInfo:
    name: str
    location: str
    key: str  # where its key is: the key file's path, or "passphrase"
    created: bool  # False: it existed already


def init_replica(ctx: Context, name: str) -> ReplicaInfo:
    """Create replica ``name``'s repository with a master key of its own (a key file, by
    default ``.snapkeep/replicas/NAME.key``, or SNAPKEEP_REPLICA_PASSPHRASE); the primary
    is opened for its chunk naming only, its key is not written there."""
    require_project_admin(ctx)
    r = ctx.config.replica(name)
    backend = ctx.replica_backend(name)
    existed = backend.exists("config")
    passphrase = None if r.key_file else ctx.replica_passphrase(name)
    Repository.init_replica(backend, ctx.in_replica(None).repository, key_file=r.key_file,
                            passphrase=passphrase)
    return ReplicaInfo(name, backend.describe(),
                       str(r.key_file) if r.key_file else "passphrase", not existed)


def missing(ctx: Context, env: EnvironmentConfig, replica: str) -> list[str]:
    """IDs of ``env``'s snapshots the replica does not hold, oldest first."""
    primary = ctx.in_replica(None)
    have = set(ctx.in_replica(replica).repository.snapshot_ids())
    return [s.id for s in reversed(snapshots.list_snapshots(primary, env))
            if s.id not in have]


def binlogs_behind(ctx: Context, env: EnvironmentConfig, replica: str) -> int:
    """How many of ``env``'s archived binlog records the replica lacks (0 without
    point_in_time)."""
    if not env.point_in_time:
        return 0
    return binlogs_to_copy(ctx.repository, ctx.in_replica(replica).repository, env.name)


def copy(ctx: Context, env: EnvironmentConfig, replica: str, snapshot_ids: list[str],
         rec: Reporter) -> list[CopyResult]:
    """Copy these snapshots (of the primary) to ``replica``, one after the other; then,
    for an environment with point_in_time, the archived binlog records the replica lacks
    (so a restore ``--at`` works from the replica alone)."""
    primary = ctx.in_replica(None).repository
    target = ctx.in_replica(replica).repository
    out = []
    for sid in snapshot_ids:
        res = copy_snapshot(primary, target, sid, rec)
        if res.copied:
            rec.log(f"Copied backup {sid} to replica {replica}: {res.chunks_sent} of "
                    f"{res.chunks} chunks sent ({mib(res.bytes_sent)}), "
                    f"{mib(res.stored_bytes)} stored; verified before listed")
        else:
            rec.log(f"Replica {replica} holds backup {sid} already")
        out.append(res)
    if env.point_in_time:
        _log_binlogs(rec, replica, copy_binlogs(primary, target, env.name, rec))
    return out


def _log_binlogs(rec: Reporter, replica: str, res: BinlogCopyResult) -> None:
    if res.hole is not None:
        rec.log(f"Warning: the binlog archive of {res.stream} in replica {replica} has a gap after "
                 f"record {res.hole.data['follows']}: {res.hole.data['reason']} (copy "
                 "more often than the primary's retention prunes); its point-in-time "
                 "window starts again at the first backup copied after the gap")
    if res.records:
        rec.log(f"Copied {res.records} binlog records of {res.stream} to replica {replica} "
                f"({res.segments} segments): {res.chunks_sent} chunks sent "
                f"({mib(res.bytes_sent)}); verified before listed")
    else:
        rec.log(f"Replica {replica} holds the binlog archive of {res.stream} already")


def automatic(ctx: Context) -> list[ReplicaConfig]:
    """The replicas each new snapshot is copied to right after it is taken."""
    return [r for r in ctx.config.replicas.values() if r.automatic]


holders = snapshots.holders


def stored_in(ctx: Context) -> dict[str, list[str]]:
    """Snapshot ID → the replicas holding it (those this host can open; one listing of
    each replica's manifests), for the console's Backups view."""
    out: dict[str, list[str]] = {}
    for name in sorted(ctx.config.replicas):
        try:
            ids = list(ctx.in_replica(name).repository.snapshot_ids())
        except SnapkeepError:
            continue
        for sid in ids:
            out.setdefault(sid, []).append(name)
    return out


def newest_copies(ctx: Context) -> dict[str, tuple[datetime | None, int]]:
    """Per replica that opens here, the creation time of its newest snapshot (None: it
    holds none) and how many it holds; replicas that cannot be opened are left out."""
    out: dict[str, tuple[datetime | None, int]] = {}
    for name in sorted(ctx.config.replicas):
        try:
            repo = ctx.in_replica(name).repository
            times = [datetime.fromisoformat(repo.load_snapshot(sid).created_at)
                     for sid in repo.snapshot_ids()]
        except SnapkeepError:
            continue
        out[name] = (max(times) if times else None, len(times))
    return out
