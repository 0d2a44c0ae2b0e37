"""Ending the activities whose runner is gone, and settling what they left.

A runner is gone when its process on this host is dead (this host's lock on the
environment is free), or — on any host — when it stopped renewing its lease. What it
left on this host (a restore cut-over, a pause) is settled before the activity is
marked failed; a restore whose cut-over was completed is recorded as succeeded.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from datetime import datetime

from snapkeep.catalog import Activity
from snapkeep.errors import SnapkeepError
from snapkeep.processes import pid_alive
from snapkeep.services.activities.info import RESTORE
from snapkeep.services.activities.lease import worker_host_pid
from snapkeep.services.activities.locks import EnvironmentLock, lock_path
from snapkeep.services.activities.recorder import ActivityRecorder
from snapkeep.services.context import Context
from snapkeep.services.notify import webhooks as notify
from snapkeep.services.snapshots import cutover, pause, restore

log = logging.getLogger("snapkeep.activities")


def _runner_gone(a: Activity) -> bool:
    """Whether the process running ``a`` is known dead, seen from this host (lock held)."""
    if not a.worker:
        return True  # recorded before leases: the lock being free says its runner is gone
    host, pid = worker_host_pid(a.worker)
    if host != socket.gethostname() or pid is None:
        return False  # another host's: its lease decides (reap_expired)
    return not pid_alive(pid)


def _settle(ctx: Context, environment: str, log_line: Callable[[str], None]
            ) -> cutover.Settled | None:
    """Settle a restore cut-over and lift a pause that a dead runner on this host left;
    how the cut-over was settled, if there was one.

    Call with this host's lock on ``environment`` held. Raises (SnapkeepError) when the
    cut-over cannot be settled yet; the environment then stays paused.
    """
    settled = cutover.recover(ctx, environment, log_line)
    if pause.lift_leftover(ctx, environment):
        log_line(f"Lifted the pause the interrupted activity left on {environment}.")
    return settled


def _complete_restore(ctx: Context, a: Activity, settled: cutover.Settled) -> bool:
    """Record a killed restore whose cut-over was completed as succeeded, with a warning,
    after running its after-restore steps (as the restore itself would have). False when
    it was not running any more."""
    rec = ActivityRecorder(ctx, a)
    rec.seal()  # nothing to cancel: the data is in
    rec.warn(f"The restore was interrupted (its process ended) after its cut-over's point of "
             f"no return; snapkeep completed it, so {a.environment} holds snapshot "
             f"{settled.snapshot} entirely.")
    env = ctx.config.environments.get(a.environment)
    error = None
    try:
        if env is not None:
            restore.after_restore(ctx, env, rec, settled.variables, foreign=settled.foreign)
    except SnapkeepError as e:  # a hook or post_restore command that failed
        error = rec.redact(f"the restore of snapshot {settled.snapshot} was completed after "
                           f"an interruption (the data is restored), but {e}")
    if error is None:
        rec.log(f"Restored backup {settled.snapshot} to {a.environment} (completed after an "
                "interruption)")
    else:
        rec.log(f"Failed: {error}")
    return ctx.catalog.finish(a.id, None, state="complete",
                              result="failure" if error else "success", error=error,
                              completed_at=ctx.clock(), completion_percent=100,
                              snapshot_id=settled.snapshot)


def _lease_reason(a: Activity) -> str:
    host, pid = worker_host_pid(a.worker or "?:?:?")
    expiry = a.lease_expires_at.strftime("%Y-%m-%d %H:%M:%S UTC") if a.lease_expires_at \
        else "an unknown time"
    return f"worker {host}:{pid} stopped renewing its lease at {expiry}; the activity was " \
        "interrupted"


class _Interrupted:
    """The running activities of one environment whose runner is gone, and their ending."""

    def __init__(self, ctx: Context, dead: list[Activity], expired: list[Activity],
                 at: datetime) -> None:
        self.ctx, self.dead, self.expired, self.at = ctx, dead, expired, at

    def log_line(self, message: str) -> None:
        for a in self.dead + self.expired:
            self.ctx.catalog.append_log(a.id, message)

    def fail(self, unsettled: str = "", completed: cutover.Settled | None = None) -> list[str]:
        """Record them as ended (``unsettled``: why the environment stays paused); a
        restore among them whose cut-over was ``completed`` succeeded after all."""
        ctx, failed = self.ctx, []
        if completed is not None:
            for a in [a for a in self.dead + self.expired if a.type == RESTORE]:
                (self.dead if a in self.dead else self.expired).remove(a)
                if _complete_restore(ctx, a, completed):
                    failed.append(a.id)
        for a in self.dead:
            error = "the process running it ended" + unsettled
            if ctx.catalog.fail_interrupted(a.id, f"interrupted: {error}",
                                            log=f"The activity was interrupted ({error})."):
                failed.append(a.id)
        for a in self.expired:
            error = _lease_reason(a) + unsettled
            if ctx.catalog.fail_interrupted(a.id, error, lease_expired_before=self.at,
                                            log=f"Failed: {error}."):
                failed.append(a.id)
        for activity_id in failed:  # ended here, as a side effect: a short budget
            notify.notify_activity_end(ctx, activity_id, budget=notify.SIDE_BUDGET)
        return failed


def recover_interrupted(ctx: Context, environment: str,
                        at: datetime | None = None) -> list[str]:
    """With this host's lock held: fail the running activities of ``environment`` whose
    runner is gone — a dead process on this host, or (any host) a lease that expired
    before ``at`` (default: now) — after settling a restore cut-over and lifting a pause
    left on this host. A restore whose cut-over was completed is recorded as succeeded,
    with a warning, once its after-restore hooks ran. Returns the IDs ended.

    Activities of live runners and pending ones (queued) are left alone. If the cut-over
    cannot be settled yet (its database is unreachable), this fails them saying so and
    raises: the environment stays paused, better in maintenance than serving mixed data.
    """
    at = at or ctx.clock()
    running = ctx.catalog.list_activities(environment, states=("in_progress",), limit=100)
    expired = [a for a in running if a.lease_expires_at is not None and a.lease_expires_at < at]
    dead = [a for a in running if a not in expired and _runner_gone(a)]
    gone = _Interrupted(ctx, dead, expired, at)

    # Settled before the activity is marked failed: a failed restore means "settled"; one
    # whose cut-over was completed succeeded (with a warning saying so).
    try:
        settled = _settle(ctx, environment, gone.log_line)
        if settled is None and any(a.type == RESTORE for a in dead):
            cutover.drop_prepared(ctx, environment, gone.log_line)  # killed while preparing
    except SnapkeepError as e:
        gone.fail(f"; its cut-over is not settled yet ({e}), so the environment stays paused "
                  "until a command can reach it")
        raise
    return gone.fail(completed=settled if settled is not None and settled.completed else None)


def reap_expired(ctx: Context, at: datetime | None = None) -> list[str]:
    """Fail running activities whose lease expired before ``at`` (their worker died or
    hung, on any host), after settling the cut-over or pause they left on this host, and
    free their environments (``recover_interrupted`` per environment). Skips an
    environment whose lock a process on this host holds (it is running there; its own end
    or death settles it). Returns the IDs ended (failed, or a completed restore)."""
    failed: list[str] = []
    expired = ctx.catalog.expired_leases(at)
    for env in dict.fromkeys(a.environment for a in expired):
        lock = EnvironmentLock.try_acquire(lock_path(ctx, env))
        if lock is None:
            continue
        try:
            failed += recover_interrupted(ctx, env, at)
        except SnapkeepError as e:
            log.warning("environment %s: %s", env, e)  # failed, and it stays paused
        finally:
            lock.release()
    _release_repository_locks(ctx, [a for a in expired if a.id in failed])
    return failed


def _release_repository_locks(ctx: Context, reaped: list[Activity]) -> None:
    """Delete the repository locks of the processes whose activities were just reaped,
    unless one of their threads still runs an activity — else a dead host's shared lock
    blocks `repository:prune` until it goes stale (30 minutes)."""
    processes = {worker_host_pid(a.worker) for a in reaped if a.worker}
    if not processes:
        return
    alive = {worker_host_pid(a.worker) for a in ctx.catalog.list_activities(
        states=("in_progress",), limit=500) if a.worker}
    for host, pid in processes - alive:
        if pid is None:
            continue
        try:
            ctx.repository.release_locks_of(host, pid)
        except SnapkeepError as e:  # the repository unreachable now: they go stale later
            log.warning("cannot release the repository locks of %s:%s: %s", host, pid, e)


def reconcile(ctx: Context) -> None:
    """Fail activities whose runner is gone: dead processes on this host, expired leases."""
    envs = {a.environment for a in ctx.catalog.list_activities(states=("in_progress",),
                                                               limit=500)}
    for env in envs:
        lock = EnvironmentLock.try_acquire(lock_path(ctx, env))
        if lock is not None:
            try:
                recover_interrupted(ctx, env)
            except SnapkeepError:
                pass  # listing still works; the next activity on env retries and says why
            finally:
                lock.release()
