"""Ending the activities whose runner is gone, after settling what they left.

A runner is gone when its process is dead — checked only by a process of the same
persistent worker ID (``lease.runs_here``: a pid means nothing elsewhere, not even in a
container that shares the hostname) with this host's lock on the environment free — or,
seen from any host, when it stopped renewing its lease. What it left — a restore
cut-over, a pause — is beside the environment's mounts (``snapshots/shared_state.py``),
so any worker that reaches them settles it: it first takes the activity over in the
catalog (one settler at a time, holding a lease), settles, and only then ends the
activity and frees the environment. Until then the environment stays held, and the
activity says why (``note_blocked``). A restore whose cut-over was completed is recorded
as succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from snapkeep.catalog import Activity
from snapkeep.errors import SnapkeepError
from snapkeep.processes import pid_alive
from snapkeep.services.activities.info import RESTORE
from snapkeep.services.activities.lease import (
    LEASE_SECONDS,
    Heartbeat,
    parse_worker,
    runs_here,
    worker_host,
    worker_id,
)
from snapkeep.services.activities.locks import EnvironmentLock, lock_path
from snapkeep.services.activities.recorder import ActivityRecorder
from snapkeep.services.context import Context
from snapkeep.services.notify import webhooks as notify
from snapkeep.services.snapshots import cutover, pause, restore

log = logging.getLogger("snapkeep.activities")


def _runner_gone(ctx: Context, a: Activity) -> bool:
    """Whether the process running ``a`` is known dead, seen from here (lock held)."""
    if not a.worker:
        return True  # recorded before leases: the lock being free says its runner is gone
    if not runs_here(ctx, a.worker):
        return False  # another worker ID's (host, container): its lease decides
    _, pid = parse_worker(a.worker)
    return pid is None or not pid_alive(pid)


def _who(a: Activity) -> str:
    wid, pid = parse_worker(a.worker or "?:?:?")
    return f"{wid}:{pid}"


def leftovers(ctx: Context, environment: str) -> str | None:
    """What a runner that is gone left on ``environment`` for a worker to settle (None:
    nothing, or its storage is not reachable from here)."""
    env = ctx.config.environments.get(environment)
    if env is None or not env.root.is_dir():
        return None
    parts = []
    journal = cutover.pending(ctx, environment)
    if journal:
        parts.append(f"a restore cut-over of snapshot {journal.get('snapshot')}"
                     + (" (past its commit point)" if journal.get("phase") == cutover.SWAPPED
                        else ""))
    marker = pause.leftover(ctx, env)
    if marker is not None:
        parts.append("a pause")
    return " and ".join(parts) or None


def _settle(ctx: Context, environment: str, log_line: Callable[[str], None],
            settler: str | None) -> cutover.Settled | None:
    """Settle a restore cut-over and lift a pause that a runner that is gone left; how the
    cut-over was settled, if there was one.

    Call with the environment held (this host's lock, the activity taken over). Raises
    (SnapkeepError, OSError) when it cannot be settled yet; the environment stays paused.
    """
    settled = cutover.recover(ctx, environment, log_line, settler)
    if pause.lift_leftover(ctx, environment):
        log_line(f"Lifted the pause the interrupted activity left on {environment}.")
    return settled


def _complete_restore(ctx: Context, a: Activity, settled: cutover.Settled,
                      settler: str | None) -> bool:
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
    return ctx.catalog.finish(a.id, settler, state="complete",
                              result="failure" if error else "success", error=error,
                              completed_at=ctx.clock(), completion_percent=100,
                              snapshot_id=settled.snapshot, worker=a.worker)


def _lease_reason(a: Activity) -> str:
    if (a.worker or "").endswith(":settle"):  # an earlier settling attempt failed
        return "its worker is gone and the activity was interrupted; what it left was " \
            "settled after an earlier attempt failed (see its log)"
    expiry = a.lease_expires_at.strftime("%Y-%m-%d %H:%M:%S UTC") if a.lease_expires_at \
        else "an unknown time"
    return f"worker {_who(a)} stopped renewing its lease at {expiry}; the activity was " \
        "interrupted"


class _Interrupted:
    """The running activities of one environment whose runner is gone, taken over by
    ``settler``, and their ending (recorded with the worker that ran them, as before the
    takeover)."""

    def __init__(self, ctx: Context, dead: list[Activity], expired: list[Activity],
                 settler: str) -> None:
        self.ctx, self.dead, self.expired, self.settler = ctx, dead, expired, settler

    @property
    def all(self) -> list[Activity]:
        return self.dead + self.expired

    def log_line(self, message: str) -> None:
        for a in self.all:
            self.ctx.catalog.append_log(a.id, message)

    def blocked(self, reason: str) -> None:
        for a in self.all:
            gone = "" if (a.worker or "").endswith(":settle") else f"worker {_who(a)} is gone; "
            self.ctx.catalog.note_blocked(a.id, gone + reason)

    def fail(self, completed: cutover.Settled | None = None) -> list[str]:
        """Record them as ended; a restore among them whose cut-over was ``completed``
        succeeded after all."""
        ctx, failed = self.ctx, []
        if completed is not None:
            for a in [a for a in self.all if a.type == RESTORE]:
                (self.dead if a in self.dead else self.expired).remove(a)
                if _complete_restore(ctx, a, completed, self.settler):
                    failed.append(a.id)
        ended = [(a, "interrupted: the process running it ended", "The activity was "
                  "interrupted (the process running it ended).") for a in self.dead]
        ended += [(a, _lease_reason(a), f"Failed: {_lease_reason(a)}.") for a in self.expired]
        for a, error, line in ended:
            ctx.catalog.append_log(a.id, line)
            if ctx.catalog.finish(a.id, self.settler, state="complete", result="failure",
                                  completed_at=ctx.clock(), error=error, worker=a.worker):
                failed.append(a.id)
        for activity_id in failed:  # ended here, as a side effect: a short budget
            notify.notify_activity_end(ctx, activity_id, budget=notify.SIDE_BUDGET)
        return failed


def recover_interrupted(ctx: Context, environment: str, at: datetime | None = None, *,
                        holder: str | None = None) -> list[str]:
    """With this host's lock held: end the running activities of ``environment`` whose
    runner is gone — a dead process of this worker ID, or (any host) a lease that expired
    before ``at`` (default: now) — after settling the restore cut-over and the pause
    they left, wherever they ran. A restore whose cut-over was completed is recorded as
    succeeded, with a warning, once its after-restore hooks ran. Returns the IDs ended.
    ``holder``: the activity the caller runs itself (not a leftover's owner).

    Activities of live runners and pending ones (queued) are left alone, and so is what
    a live runner has under way. When the environment's storage is not reachable from
    here, or what was left cannot be settled yet (its database is unreachable), the
    activities stay running, saying why, and hold the environment — better held and in
    maintenance than freed with mixed data; the latter also raises.
    """
    at = at or ctx.clock()
    running = [a for a in ctx.catalog.list_activities(environment, states=("in_progress",),
                                                      limit=100) if a.id != holder]
    expired = [a for a in running if a.lease_expires_at is not None and a.lease_expires_at < at]
    dead = [a for a in running if a not in expired and _runner_gone(ctx, a)]
    if len(dead) + len(expired) < len(running):
        return []  # a live runner holds it: what is under way is its own
    env = ctx.config.environments.get(environment)
    if env is not None and not env.root.is_dir():
        for a in dead + expired:
            ctx.catalog.note_blocked(a.id, f"worker {_who(a)} is gone; {environment} stays "
                                     f"held until a worker that reaches {env.root} settles "
                                     "what it left")
        return []
    settler = worker_id(ctx, "settle")
    dead = [a for a in dead if ctx.catalog.take_over(a.id, a.worker, settler, LEASE_SECONDS)]
    expired = [a for a in expired if ctx.catalog.take_over(
        a.id, a.worker, settler, LEASE_SECONDS, expired_before=at)]
    gone = _Interrupted(ctx, dead, expired, settler)
    if running and not gone.all:
        return []  # another process took them over first: it settles
    beats = [Heartbeat(ctx, a.id, settler, LEASE_SECONDS, lambda _why: None)
             for a in gone.all]
    for beat in beats:
        beat.start()
    try:
        left = leftovers(ctx, environment)
        for a in gone.all:
            if left:
                ctx.catalog.append_log(a.id, f"Worker {settler} settles {left} that worker "
                                             f"{_who(a)} left on {environment}.")
        # Settled before the activity is ended: a failed restore means "settled"; one
        # whose cut-over was completed succeeded (with a warning saying so).
        try:
            settled = _settle(ctx, environment, gone.log_line, settler)
            if settled is None and any(a.type == RESTORE for a in gone.all):
                cutover.drop_prepared(ctx, environment, gone.log_line)  # killed preparing
        except (SnapkeepError, OSError) as e:
            gone.blocked(f"{left or 'what its runner left'} on {environment} is not settled "
                         f"yet ({e}); the environment stays paused and held until a worker "
                         "settles it (retried when this lease ends)")
            raise
        # still under the lease: a completed restore's after-restore steps may take long
        return gone.fail(completed=settled if settled is not None and settled.completed
                         else None)
    finally:
        for beat in beats:
            beat.stop()


def reap_expired(ctx: Context, at: datetime | None = None,
                 environments: Sequence[str] | None = None) -> list[str]:
    """End running activities whose lease expired before ``at`` (their worker died or
    hung, on any host), after settling the cut-over or pause they left, and free their
    environments (``recover_interrupted`` per environment). ``environments``: only those
    (a worker kept to some with ``-e``). Skips an environment whose lock a process on
    this host holds (it is running there; its own end or death settles it). Returns the
    IDs ended (failed, or a completed restore)."""
    failed: list[str] = []
    expired = ctx.catalog.expired_leases(at)
    for env in dict.fromkeys(a.environment for a in expired):
        if environments is not None and env not in environments:
            continue
        lock = EnvironmentLock.try_acquire(lock_path(ctx, env))
        if lock is None:
            continue
        try:
            failed += recover_interrupted(ctx, env, at)
        except (SnapkeepError, OSError) as e:
            log.warning("environment %s: %s", env, e)  # held, paused, and said so
        finally:
            lock.release()
    _release_repository_locks(ctx, [a for a in expired if a.id in failed])
    return failed


def _release_repository_locks(ctx: Context, reaped: list[Activity]) -> None:
    """Delete the repository locks of the processes whose activities were just reaped,
    unless one of their threads still runs an activity — else a dead host's shared lock
    blocks `repository:prune` until it goes stale (30 minutes)."""
    processes = {parse_worker(a.worker) for a in reaped if a.worker}
    if not processes:
        return
    alive = {parse_worker(a.worker) for a in ctx.catalog.list_activities(
        states=("in_progress",), limit=500) if a.worker}
    for wid, pid in processes - alive:
        if pid is None:
            continue
        host = worker_host(wid)  # repository locks name their holder by host and pid
        try:
            ctx.repository.release_locks_of(host, pid)
        except SnapkeepError as e:  # the repository unreachable now: they go stale later
            log.warning("cannot release the repository locks of %s:%s: %s", host, pid, e)


def reconcile(ctx: Context) -> None:
    """End activities whose runner is gone (dead processes of this worker ID, expired
    leases), after settling what they left."""
    envs = {a.environment for a in ctx.catalog.list_activities(states=("in_progress",),
                                                               limit=500)}
    for env in envs:
        lock = EnvironmentLock.try_acquire(lock_path(ctx, env))
        if lock is not None:
            try:
                recover_interrupted(ctx, env)
            except (SnapkeepError, OSError):
                pass  # listing still works; the activity says why env stays held
            finally:
                lock.release()
