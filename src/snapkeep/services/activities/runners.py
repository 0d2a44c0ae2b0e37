"""The work of each of snapkeep's activity types, registered once in ``registry``.

Imported by ``operations`` (which runs them), so every process that can run an activity
has them all registered.
"""

from __future__ import annotations

from typing import Any

from snapkeep.config import EnvironmentConfig
from snapkeep.errors import SnapkeepError
from snapkeep.services import pitr, replicas
from snapkeep.services.activities.info import BACKUP, DELETE, EXPIRE, RESTORE
from snapkeep.services.activities.recorder import ActivityRecorder
from snapkeep.services.activities.registry import ActivityType, register
from snapkeep.services.context import Context
from snapkeep.services.snapshots import backup, drill, restore
from snapkeep.services.snapshots import listing as snapshots
from snapkeep.services.snapshots.restore_scope import RestoreScope
from snapkeep.services.transfer import export_import as transfer


def _backup(ctx: Context, env: EnvironmentConfig, rec: ActivityRecorder,
            params: dict[str, Any]) -> str:
    sid = backup.backup(ctx, env, rec, live=bool(params.get("live")),
                        automated=bool(params.get("automated")),
                        threads=params.get("threads"))
    for r in replicas.automatic(ctx):
        try:
            replicas.copy(ctx, env, r.name, [sid], rec)
        except SnapkeepError as e:  # the snapshot is taken: the copy is retried later
            rec.warn(f"backup {sid} was not copied to replica {r.name}: {e}; copy it with "
                     f"`snapkeep snapshot:copy {sid} --to {r.name}`")
    return sid


def _copy(ctx: Context, env: EnvironmentConfig, rec: ActivityRecorder,
          params: dict[str, Any]) -> None:
    replicas.copy(ctx, env, params["replica"], list(params["snapshot_ids"]), rec)


def _restore(ctx: Context, env: EnvironmentConfig, rec: ActivityRecorder,
             params: dict[str, Any]) -> str:
    ctx = ctx.in_replica(params.get("replica"))
    manifest = snapshots.load_manifest(ctx, params["snapshot_id"])
    at = params.get("at")
    return restore.restore(ctx, env, manifest, rec, threads=params.get("threads"),
                           scope=RestoreScope.from_params(params.get("scope")),
                           at=pitr.parse_at(at) if at else None)


def _drill(ctx: Context, env: EnvironmentConfig, rec: ActivityRecorder,
           params: dict[str, Any]) -> str:
    ctx = ctx.in_replica(params.get("replica"))
    manifest = snapshots.load_manifest(ctx, params["snapshot_id"])
    drill.drill(ctx, env, manifest, rec, threads=params.get("threads"))
    return manifest.id


def _export(ctx: Context, env: EnvironmentConfig, rec: ActivityRecorder,
            params: dict[str, Any]) -> None:
    transfer.run_export(ctx, env, rec, params)


def _delete(ctx: Context, env: EnvironmentConfig, rec: ActivityRecorder,
            params: dict[str, Any]) -> None:
    """Forget snapshots (a delete, or an expiry of what retention no longer keeps), in
    the primary or (an expiry by its own retention) in a replica."""
    replica = params.get("replica")
    ctx = ctx.in_replica(replica)
    for sid in params["snapshot_ids"]:
        ctx.repository.forget_snapshot(sid)
        if replica is None:  # the catalog mirrors the primary only
            ctx.catalog.delete_snapshot(sid)
        rec.log(f"Deleted backup {sid}" + (f" from replica {replica}" if replica else ""))
    rec.log("Space is reclaimed by `snapkeep repository:prune`.")


register(ActivityType(BACKUP, _backup))
register(ActivityType(RESTORE, _restore))
register(ActivityType(drill.VERIFY, _drill, cleans_up_drills=False))
register(ActivityType(transfer.EXPORT, _export))
register(ActivityType(transfer.IMPORT, transfer.run_import))
register(ActivityType(DELETE, _delete))
register(ActivityType(replicas.COPY, _copy))
register(ActivityType(EXPIRE, _delete))
