"""Starting the mutating use cases as activities: in this process, or queued for a worker.

Each ``start_*`` checks policy first (role, active environment, plan, restore window),
then records the activity and, by default, runs it here to its end. Three ways:

- default: the activity starts at once (``in_progress``) and runs in this process;
- ``queue=True`` (the API): it is queued (``pending``) and returned at once; workers
  (``snapkeep serve``'s threads, ``snapkeep worker`` processes) claim and run it;
- ``detach=True`` (the CLI's ``--no-wait``): queued as above, plus a one-shot worker
  process, ``python -m snapkeep.worker --activity ID``, started for it — so a laptop with
  no server still runs it; when a server's worker claims it first, the one-shot exits.

All three raise BusyError when the environment already has an activity pending or
running, except with ``queue_behind=True`` (a schedule): then it waits its turn.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from snapkeep.config import EnvironmentConfig
from snapkeep.errors import PolicyError, SnapkeepError, UsageError
from snapkeep.policy import (
    Action,
    require_active,
    require_manual_snapshot_allowed,
    require_restorable,
    require_role,
)
from snapkeep.repository import SnapshotManifest
from snapkeep.services import pitr, replicas
from snapkeep.services.activities import (
    registry,
    runners,  # noqa: F401 - registers the activity types
)
from snapkeep.services.activities.claims import Claim, claim
from snapkeep.services.activities.info import BACKUP, DELETE, EXPIRE, RESTORE, ActivityInfo
from snapkeep.services.activities.recorder import ActivityRecorder, Observer
from snapkeep.services.activities.running import run
from snapkeep.services.context import Context
from snapkeep.services.snapshots import drill, retention
from snapkeep.services.snapshots import listing as snapshots
from snapkeep.services.snapshots.restore_scope import RestoreScope
from snapkeep.services.transfer import export_import as transfer


def _check_env(ctx: Context, env: EnvironmentConfig, action: Action) -> None:
    if ctx.config.read_only and action is not Action.SNAPSHOT_RESTORE_ELSEWHERE:
        _refuse_read_only(ctx, action)
    require_role(ctx.actor, env.name, action)
    require_active(env.name, ctx.catalog.environment_status(env.name))


def _refuse_read_only(ctx: Context, action: Action) -> None:
    raise PolicyError(f"this host only reads the project's repository (`read_only = true` in "
                      f"{ctx.config.path}): it cannot {action.value}; do it on the shop's "
                      "own host")


def _state(detach: bool, queue: bool) -> str:
    return "pending" if detach or queue else "in_progress"


def start_backup(ctx: Context, env: EnvironmentConfig, *, live: bool, detach: bool = False,
                 observer: Observer | None = None, automated: bool = False,
                 threads: int | None = None, queue: bool = False,
                 queue_behind: bool = False, once: bool = False) -> ActivityInfo:
    """A backup of ``env``: run here, or ``queue``d for a worker. ``queue_behind``: queued
    behind a running or waiting activity instead of refused; ``once``: refused when a
    backup of this actor already waits there (a schedule)."""
    _check_env(ctx, env, Action.SNAPSHOT_CREATE)
    if not automated:
        require_manual_snapshot_allowed(ctx.config.plan, env.type, env.name)
    ctx.repository  # noqa: B018 - fail now, not in the worker, when there is no repository
    desc = f"{ctx.actor.name} created a backup of {env.name}"
    c = claim(ctx, env.name, BACKUP, desc,
                         {"live": live, "automated": automated, "threads": threads},
                         state=_state(detach, queue), unless_busy=not queue_behind,
                         unless_waiting=once)
    return go(ctx, c, detach, queue, observer)


def start_restore(ctx: Context, env: EnvironmentConfig, snapshot_id: str | None, *,
                  detach: bool = False, observer: Observer | None = None,
                  threads: int | None = None, queue: bool = False,
                  target: EnvironmentConfig | None = None,
                  scope: RestoreScope | None = None, at: str | None = None) -> ActivityInfo:
    """Restore a snapshot of ``env`` into ``target`` (default: ``env`` itself), all of it
    or the parts ``scope`` names. Needs Admin on ``target``, which must be active, and on
    ``env`` when it is another one: its data leaves it, as with an export (a Viewer of
    ``env`` who is Admin of ``target`` could otherwise export it from there). The activity
    belongs to ``target``.

    ``at`` (``--at`` as typed: a time or a GTID, ``services/pitr.py``): the database as of
    that point, from ``env``'s binlog archive; ``snapshot_id`` is then the base (None: the
    latest one before it). It is parsed and checked against the recoverable window here,
    before the activity is claimed; mounts are not restored."""
    into = target or env
    scope = scope or RestoreScope()
    _check_env(ctx, into, Action.SNAPSHOT_RESTORE)
    if into.name != env.name:
        require_role(ctx.actor, env.name, Action.SNAPSHOT_RESTORE_ELSEWHERE)
    point = None
    if at is not None:
        if not scope.database or scope.mounts:
            raise UsageError("--at restores the database (or --table tables) as of a point "
                             "in time; mounts are not archived continuously: drop --only "
                             "mounts / --mount, and restore mounts from a snapshot without --at")
        point = pitr.parse_at(at)
        if snapshot_id is not None:
            snapshots.get_snapshot(ctx, env, snapshot_id)  # NotFoundError for a wrong ID
        snapshot_id = pitr.plan(ctx, env, point, snapshot_id).base.snapshot_id
    snap, manifest = _snapshot_and_manifest(ctx, env, snapshot_id)
    if ctx.replica is None:  # a replica keeps its own retention: what it holds restores
        require_restorable(snap.id, snap.status, snap.expires_at, ctx.clock())
    scope.check(manifest, into)
    desc = f"{ctx.actor.name} restored {into.name} from backup {snap.id}"
    if ctx.replica is not None:
        desc += f" in replica {ctx.replica}"
    if into.name != env.name:
        desc += f" of {env.name}"
    if point is not None:
        desc += f" as of {point.describe()}"
    if not scope.is_full and not (point is not None and scope.tables is None):
        desc += f" (only {scope.describe(manifest)})"
    c = claim(ctx, into.name, RESTORE, desc,
                         {"snapshot_id": snap.id, "threads": threads, "source": env.name,
                          "scope": scope.to_params(), "at": at, "replica": ctx.replica},
                         state=_state(detach, queue))
    return go(ctx, c, detach, queue, observer)


def _snapshot_and_manifest(ctx: Context, env: EnvironmentConfig, snapshot_id: str | None
                           ) -> tuple[snapshots.SnapshotInfo, SnapshotManifest]:
    snap = snapshots.get_snapshot(ctx, env, snapshot_id)
    return snap, snapshots.load_manifest(ctx, snap.id)


def start_copy(ctx: Context, env: EnvironmentConfig, replica: str,
               snapshot_ids: list[str] | None, *, detach: bool = False,
               observer: Observer | None = None, queue: bool = False,
               queue_behind: bool = False,
               binlogs_alone: bool = True) -> ActivityInfo | None:
    """Copy snapshots of ``env`` to ``replica`` (None: every one it does not hold yet) as
    an activity of ``env``, and with them (point_in_time) the binlog records it lacks;
    None when there is nothing to copy. With None and every snapshot held, the binlog
    records alone when ``binlogs_alone`` (the scheduler's every-tick pull leaves them to
    the next snapshot's copy). Admin on ``env``: its data leaves for other storage, as
    with an export."""
    _check_env(ctx, env, Action.SNAPSHOT_RESTORE_ELSEWHERE)
    ctx.config.replica(replica)
    if snapshot_ids is None:
        snapshot_ids = replicas.missing(ctx, env, replica)
        if not snapshot_ids and not (
                binlogs_alone and replicas.binlogs_behind(ctx, env, replica)):
            return None
    else:
        snapshot_ids = [snapshots.get_snapshot(ctx, env, sid).id for sid in snapshot_ids]
    what = f"backup {snapshot_ids[0]}" if len(snapshot_ids) == 1 else \
        f"{len(snapshot_ids)} backups" if snapshot_ids else "the binlog archive"
    desc = f"{ctx.actor.name} copied {what} of {env.name} to replica {replica}"
    c = claim(ctx, env.name, replicas.COPY, desc,
              {"replica": replica, "snapshot_ids": snapshot_ids},
              state=_state(detach, queue), unless_busy=not queue_behind)
    return go(ctx, c, detach, queue, observer)


def start_drill(ctx: Context, env: EnvironmentConfig, snapshot_id: str | None, *,
                detach: bool = False, observer: Observer | None = None,
                threads: int | None = None, queue: bool = False,
                queue_behind: bool = False, once: bool = False) -> ActivityInfo:
    """A restore drill of a snapshot of ``env`` (the newest without ID): restored into
    scratch copies, verified against its digests, removed (``services/snapshots/drill.py``). Needs
    Admin on ``env``, which must be active; its live data is never touched."""
    _check_env(ctx, env, Action.SNAPSHOT_VERIFY)
    snap = snapshots.get_snapshot(ctx, env, snapshot_id)
    ctx.repository  # noqa: B018 - fail now, not in the worker, when there is no repository
    desc = f"{ctx.actor.name} ran a restore drill of backup {snap.id} of {env.name}"
    if ctx.replica is not None:
        desc += f" in replica {ctx.replica}"
    c = claim(ctx, env.name, drill.VERIFY, desc,
                         {"snapshot_id": snap.id, "threads": threads, "replica": ctx.replica},
                         state=_state(detach, queue), unless_busy=not queue_behind,
                         unless_waiting=once)
    return go(ctx, c, detach, queue, observer)


def delete_snapshot(ctx: Context, env: EnvironmentConfig, snapshot_id: str,
                    observer: Observer | None = None, *, queue: bool = False) -> ActivityInfo:
    if ctx.config.read_only:
        _refuse_read_only(ctx, Action.SNAPSHOT_DELETE)
    require_role(ctx.actor, env.name, Action.SNAPSHOT_DELETE)
    snap = snapshots.get_snapshot(ctx, env, snapshot_id)
    desc = f"{ctx.actor.name} deleted backup {snap.id} of {env.name}"
    c = claim(ctx, env.name, DELETE, desc, {"snapshot_ids": [snap.id]},
                         state=_state(False, queue))
    return go(ctx, c, False, queue, observer)


def expire_snapshots(ctx: Context, env: EnvironmentConfig, observer: Observer | None = None,
                     *, queue: bool = False,
                     queue_behind: bool = False) -> tuple[ActivityInfo | None, list]:
    """Delete the snapshots the restore window and retention policy no longer keep (in a
    replica context: the snapshots the replica's own retention no longer keeps — also on
    a read-only host, which owns its replicas)."""
    if ctx.config.read_only and ctx.replica is None:
        _refuse_read_only(ctx, Action.SNAPSHOT_DELETE)
    require_role(ctx.actor, env.name, Action.SNAPSHOT_DELETE)
    decisions = retention.plan(ctx, env)
    expired = [d.snapshot.id for d in decisions if not d.keep]
    if not expired:
        return None, decisions
    desc = f"{ctx.actor.name} expired {len(expired)} backup(s) of {env.name}"
    if ctx.replica is not None:
        desc += f" in replica {ctx.replica}"
    c = claim(ctx, env.name, EXPIRE, desc,
              {"snapshot_ids": expired, "replica": ctx.replica},
                         state=_state(False, queue), unless_busy=not queue_behind)
    return go(ctx, c, False, queue, observer), decisions


def start_export(ctx: Context, env: EnvironmentConfig, snapshot_id: str | None, dest: Path, *,
                 observer: Observer | None = None, queue: bool = False, detach: bool = False,
                 force: bool = False) -> ActivityInfo:
    """Export a snapshot into ``dest`` as an activity (``transfer.claim_export`` says what
    is checked first)."""
    c = transfer.claim_export(ctx, env, snapshot_id, dest, later=detach or queue, force=force)
    return go(ctx, c, detach, queue, observer)


def start_import(ctx: Context, env: EnvironmentConfig, source: Path, *,
                 observer: Observer | None = None, queue: bool = False, detach: bool = False,
                 threads: int | None = None) -> ActivityInfo:
    """Make a new snapshot of ``env`` from ``source`` as an activity
    (``transfer.claim_import`` says what is checked first)."""
    c = transfer.claim_import(ctx, env, source, later=detach or queue, threads=threads)
    return go(ctx, c, detach, queue, observer)


def go(ctx: Context, c: Claim, detach: bool, queue: bool,
        observer: Observer | None) -> ActivityInfo:
    if detach:
        return _detach(ctx, c)
    if queue:
        return ActivityInfo.of(c.activity)
    return execute(ctx, c, observer)


def execute(ctx: Context, c: Claim, observer: Observer | None = None, *,
            stop: threading.Event | None = None) -> ActivityInfo:
    """Run a claimed activity to the end (in-process, and by workers). Raises what the
    activity failed with, after recording it."""
    a = c.activity
    env = ctx.config.environment(a.environment)
    params = a.parameters or {}

    def work(rec: ActivityRecorder) -> str | None:
        kind = registry.lookup(a.type)  # an unknown type fails the activity, saying so
        if kind.cleans_up_drills:
            try:
                drill.cleanup_leftovers(ctx, env, rec)
            except SnapkeepError as e:
                rec.log(f"could not remove a killed restore drill's scratch copies ({e}); "
                        "the next activity tries again")
        return kind.run(ctx, env, rec, params)

    return run(ctx, c, work, observer, stop=stop)


def _detach(ctx: Context, c: Claim) -> ActivityInfo:
    """Start a one-shot worker process for the queued activity (its output goes to
    ``.snapkeep/logs/<id>.log``); it claims exactly that activity, or exits if another
    worker ran it."""
    log = ctx.state_path("logs", f"{c.activity.id}.log")
    with open(log, "ab") as out:
        subprocess.Popen(
            [sys.executable, "-m", "snapkeep.worker", "--config", str(ctx.config.path),
             "--activity", c.activity.id],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    return ActivityInfo.of(c.activity)
