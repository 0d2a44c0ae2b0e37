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
from snapkeep.repository import CopyResult, Repository, copy_snapshot
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


def copy(ctx: Context, replica: str, snapshot_ids: list[str], rec: Reporter) -> list[CopyResult]:
    """Copy these snapshots (of the primary) to ``replica``, one after the other."""
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
    return out


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
