"""Integrity and space: verifying snapshots, checking and pruning the repository."""

from __future__ import annotations

from snapkeep.config import EnvironmentConfig
from snapkeep.policy import Action, require_role
from snapkeep.progress import NullReporter, Reporter
from snapkeep.repository import PrunePlan, Report
from snapkeep.services.context import Context
from snapkeep.services.snapshots import listing as snapshots

PRUNE_LOCK_WAIT = 30.0  # seconds prune waits for running snapshots' shared locks


def verify_snapshot(ctx: Context, env: EnvironmentConfig, snapshot_id: str,
                    reporter: Reporter | None = None) -> Report:
    """Read, decrypt and hash-check every chunk the snapshot references."""
    snap = snapshots.get_snapshot(ctx, env, snapshot_id)
    return ctx.repository.verify_snapshot(snap.id, reporter or NullReporter())


def check_repository(ctx: Context, *, read_data: bool,
                     reporter: Reporter | None = None) -> Report:
    """Structure of the whole repository; with ``read_data`` every pack is read too."""
    require_project_admin(ctx)
    return ctx.repository.check(read_data=read_data, reporter=reporter or NullReporter())


def prune_repository(ctx: Context, reporter: Reporter | None = None) -> Report:
    """Delete data no snapshot references, repacking partly used packs, and the archived
    binlogs before each environment's oldest restorable base snapshot (exclusive lock)."""
    require_project_admin(ctx)
    report = ctx.repository.prune(reporter or NullReporter(), wait=PRUNE_LOCK_WAIT,
                                  now=ctx.clock())
    snapshots.sync(ctx)
    return report


def plan_prune(ctx: Context, reporter: Reporter | None = None) -> PrunePlan:
    """What ``prune_repository`` would delete, repack and write now; changes nothing
    (no lock is taken: a snapshot written meanwhile may change what a prune does)."""
    require_project_admin(ctx)
    return ctx.repository.plan_prune(reporter or NullReporter(), now=ctx.clock())


def require_project_admin(ctx: Context) -> None:
    # Repository-wide operations touch every environment's data.
    for env in ctx.config.environments:
        require_role(ctx.actor, env, Action.SNAPSHOT_DELETE)
