"""Which snapshots of an environment have expired: the restore window for manual ones,
the environment's retention policy (snapkeep.toml) for automated ones."""

from __future__ import annotations

from dataclasses import dataclass, replace

from snapkeep.config import EnvironmentConfig
from snapkeep.policy import Action, RetentionPolicy, SnapshotFacts, plan_expiry, require_role
from snapkeep.services.context import Context
from snapkeep.services.snapshots import listing as snapshots
from snapkeep.services.snapshots.listing import SnapshotInfo


@dataclass(frozen=True)
class Decision:
    snapshot: SnapshotInfo
    keep: bool
    reason: str


def policy_of(env: EnvironmentConfig) -> RetentionPolicy:
    return RetentionPolicy(**env.retention)


def _is_base(ctx: Context, snapshot_id: str) -> bool:
    """Whether the snapshot records a binlog position (docs/pitr.md): its manifest says."""
    manifest = ctx.repository.load_snapshot(snapshot_id)
    return any(isinstance(d, dict) and isinstance(d.get("binlog"), dict)
               for d in manifest.services.values())


def plan(ctx: Context, env: EnvironmentConfig) -> list[Decision]:
    """What expiry keeps and deletes; a point-in-time environment keeps one base snapshot
    (``policy.retention``, Point in time)."""
    require_role(ctx.actor, env.name, Action.SNAPSHOT_READ)
    items = snapshots.list_snapshots(ctx, env)  # newest first
    now = ctx.clock()
    if ctx.replica is not None:
        # a replica keeps by its own rules, manual snapshots as automated ones (the
        # primary's restore window is not its); no rules: it keeps everything
        facts = [SnapshotFacts(id=s.id, created_at=s.created_at, automated=True,
                               expires_at=None) for s in items]
        policy = RetentionPolicy(**ctx.config.replica(ctx.replica).retention)
        by_id = {s.id: s for s in items}
        return [Decision(by_id[f.id], keep, reason)
                for f, keep, reason in plan_expiry(facts, policy, now)]
    facts = [SnapshotFacts(id=s.id, created_at=s.created_at, automated=s.automated,
                           expires_at=s.expires_at) for s in items]
    decided = plan_expiry(facts, policy_of(env), now)
    # Reading manifests costs a request each: usually the newest kept snapshot is a base
    # and settles it; only when none is are all of them read to pick the one to keep.
    if env.point_in_time and not any(keep and _is_base(ctx, f.id) for f, keep, _r in decided):
        facts = [replace(f, base=_is_base(ctx, f.id)) for f in facts]
        decided = plan_expiry(facts, policy_of(env), now, point_in_time=True)
    by_id = {s.id: s for s in items}
    return [Decision(by_id[f.id], keep, reason) for f, keep, reason in decided]
