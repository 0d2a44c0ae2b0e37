"""Activities: every mutation runs as one, with an ID, a state, a log and a percentage.

The ``Reporter`` handed to engines, which also stops a cancelled activity, is
``recorder.ActivityRecorder``.

One activity runs per environment at a time, guarded twice:

- in the catalog, by ``environments.running_activity`` (catalog/queue.py): taken when an
  activity starts or is claimed from the queue, freed when it ends. Every host that
  shares the catalog obeys it;
- on this host, by an exclusive ``flock`` on ``.snapkeep/locks/<env>.lock``, held by the
  process running the activity. The kernel drops it when that process dies, so the
  pause and the restore cut-over it left can be settled at once (``recover_interrupted``),
  by its pause guard or the next command, without waiting for its lease.

A running activity belongs to a worker (``host:pid:n``) whose lease it renews every
third of the lease. It is interrupted when its process on this host is gone, or (on any
host) when its lease has expired: ``reap_expired``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from snapkeep.catalog import Activity, ActivityLog
from snapkeep.config import safe_name
from snapkeep.errors import (
    BusyError,
    Cancelled,
    NotFoundError,
    PolicyError,
    SnapkeepError,
)
from snapkeep.ids import new_id
from snapkeep.policy import Action, require_role
from snapkeep.processes import pid_alive
from snapkeep.services.activities.locks import EnvironmentLock, is_locked
from snapkeep.services.activities.recorder import ActivityRecorder, Observer
from snapkeep.services.context import Context
from snapkeep.services.notify import webhooks as notify
from snapkeep.services.snapshots import cutover, pause, restore

BACKUP = "environment.backup"
RESTORE = "environment.restore"
DELETE = "environment.backup.delete"
EXPIRE = "environment.backup.expire"
RUNNING = ("pending", "in_progress")
LEASE_SECONDS = 60.0  # a runner renews every third of it; a silent one is reaped after it
LOCK_WAIT = 30.0  # seconds a runner waits for this host's environment lock

log = logging.getLogger("snapkeep.activities")


def worker_id(n: int | str = 0) -> str:
    """``host:pid:n``: who runs an activity (``n`` tells a process's worker threads apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{n}"


def _worker_host_pid(worker: str) -> tuple[str, int | None]:
    host, _, rest = worker.rpartition(":")  # host may itself hold colons; pid and n do not
    host, _, pid = host.rpartition(":")
    return host, int(pid) if pid.isdigit() else None


class _Heartbeat:
    """Renews a running activity's lease every third of it, in a thread of its own."""

    def __init__(self, ctx: Context, activity_id: str, worker: str, lease_seconds: float,
                 on_lost: Callable[[str], None]) -> None:
        self._catalog = ctx.catalog
        self._args = (activity_id, worker, lease_seconds)
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{activity_id}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        activity_id, worker, lease = self._args
        while not self._stop.wait(lease / 3):
            try:
                renewed = self._catalog.renew_lease(activity_id, worker, lease)
            except Exception as e:  # noqa: BLE001 - retried at the next beat
                log.warning("could not renew the lease of activity %s: %s", activity_id, e)
                continue
            if not renewed:
                self._on_lost(f"worker {worker} lost its lease on the activity (it was "
                              "declared interrupted)")
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


@dataclass
class Claim:
    """A started activity: who owns its lease and, when held already, this host's lock."""

    activity: Activity
    lock: EnvironmentLock | None
    worker: str | None = None  # None only for activities recorded before leases existed
    lease_seconds: float = LEASE_SECONDS


MAX_LINE_ID = 2**63 - 1  # log line ids are 64-bit integers in the catalog: no later one


def lock_path(ctx: Context, environment: str) -> Path:
    return ctx.state_path("locks", f"{safe_name(environment)}.lock")


def _busy(ctx: Context, environment: str, blocker: Activity | None) -> BusyError:
    if blocker is None:
        blockers = ctx.catalog.list_activities(environment, states=RUNNING, limit=1)
        blocker = blockers[0] if blockers else None
    which = f"activity {blocker.id} ({blocker.description})" if blocker else "another activity"
    doing = "is waiting to run" if blocker and blocker.state == "pending" else "is running"
    return BusyError(
        f"{which} {doing} on environment {environment}; only one activity runs per "
        f"environment at a time. Wait for it (`snapkeep activity:list -e {environment}`) "
        "and try again.")


def _take_lock(ctx: Context, environment: str, *, wait: float) -> EnvironmentLock | None:
    """This host's lock on ``environment``, waiting up to ``wait`` seconds for it."""
    deadline = time.monotonic() + wait
    while True:
        lock = EnvironmentLock.try_acquire(lock_path(ctx, environment))
        if lock is not None or time.monotonic() >= deadline:
            return lock
        time.sleep(0.05)


def claim(ctx: Context, environment: str, type_: str, description: str,
          parameters: dict, *, state: str = "in_progress", unless_busy: bool = True,
          lease_seconds: float = LEASE_SECONDS) -> Claim:
    """Record a new activity, started at once (``in_progress``: this process runs it, and
    holds this host's lock) or queued for a worker (``pending``).

    Raises BusyError when the environment already has an activity pending or running —
    for a queued one only with ``unless_busy`` (a schedule queues behind what is there).
    Before that, settles what an interrupted activity left on this host.
    """
    a = Activity(id=new_id(), environment=environment, type=type_, state=state, result=None,
                 description=description, created_at=ctx.clock(), completion_percent=0,
                 parameters=parameters, pid=None, actor=ctx.actor.name)
    if state != "in_progress":
        if unless_busy:  # settle leftovers when the lock is free; never wait for it
            lock = EnvironmentLock.try_acquire(lock_path(ctx, environment))
            if lock is not None:
                try:
                    recover_interrupted(ctx, environment)
                finally:
                    lock.release()
        blocker = ctx.catalog.enqueue(a, unless_busy=unless_busy)
        if blocker is not None:
            raise _busy(ctx, environment, blocker)
        return Claim(a, None, None, lease_seconds)

    # A process on this host holds the lock: refuse at once if the catalog says why,
    # else it is a moment's holder (a guard, a listing) and worth waiting for.
    lock = EnvironmentLock.try_acquire(lock_path(ctx, environment))
    if lock is None:
        if ctx.catalog.list_activities(environment, states=RUNNING, limit=1):
            raise _busy(ctx, environment, None)
        lock = _take_lock(ctx, environment, wait=LOCK_WAIT)
        if lock is None:
            raise _busy(ctx, environment, None)
    try:
        recover_interrupted(ctx, environment)
        me = worker_id(0)
        blocker = ctx.catalog.start(a, me, lease_seconds, pid=os.getpid())
        if blocker is not None:
            raise _busy(ctx, environment, blocker)
    except BaseException:
        lock.release()
        raise
    return Claim(a, lock, me, lease_seconds)


def _runner_gone(a: Activity) -> bool:
    """Whether the process running ``a`` is known dead, seen from this host (lock held)."""
    if not a.worker:
        return True  # recorded before leases: the lock being free says its runner is gone
    host, pid = _worker_host_pid(a.worker)
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
    host, pid = _worker_host_pid(a.worker or "?:?:?")
    expiry = a.lease_expires_at.strftime("%Y-%m-%d %H:%M:%S UTC") if a.lease_expires_at \
        else "an unknown time"
    return f"worker {host}:{pid} stopped renewing its lease at {expiry}; the activity was " \
        "interrupted"


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

    def log_line(message: str) -> None:
        for a in dead + expired:
            ctx.catalog.append_log(a.id, message)

    def fail(unsettled: str = "", completed: cutover.Settled | None = None) -> list[str]:
        failed = []
        if completed is not None:  # the restore that was killed succeeded after all
            for a in [a for a in dead + expired if a.type == RESTORE]:
                (dead if a in dead else expired).remove(a)
                if _complete_restore(ctx, a, completed):
                    failed.append(a.id)
        for a in dead:
            error = "the process running it ended" + unsettled
            if ctx.catalog.fail_interrupted(a.id, f"interrupted: {error}",
                                            log=f"The activity was interrupted ({error})."):
                failed.append(a.id)
        for a in expired:
            error = _lease_reason(a) + unsettled
            if ctx.catalog.fail_interrupted(a.id, error, lease_expired_before=at,
                                            log=f"Failed: {error}."):
                failed.append(a.id)
        for activity_id in failed:  # ended here, as a side effect: a short budget
            notify.notify_activity_end(ctx, activity_id, budget=notify.SIDE_BUDGET)
        return failed

    # Settled before the activity is marked failed: a failed restore means "settled"; one
    # whose cut-over was completed succeeded (with a warning saying so).
    try:
        settled = _settle(ctx, environment, log_line)
        if settled is None and any(a.type == RESTORE for a in dead):
            cutover.drop_prepared(ctx, environment, log_line)  # killed while preparing
    except SnapkeepError as e:
        fail(f"; its cut-over is not settled yet ({e}), so the environment stays paused "
             "until a command can reach it")
        raise
    return fail(completed=settled if settled is not None and settled.completed else None)


def reap_expired(ctx: Context, at: datetime | None = None) -> list[str]:
    """Fail running activities whose lease expired before ``at`` (their worker died or
    hung, on any host), after settling the cut-over or pause they left on this host, and
    free their environments (``recover_interrupted`` per environment). Skips an
    environment whose lock a process on this host holds (it is running there; its own end
    or death settles it). Returns the IDs ended (failed, or a completed restore)."""
    failed: list[str] = []
    for env in dict.fromkeys(a.environment for a in ctx.catalog.expired_leases(at)):
        lock = EnvironmentLock.try_acquire(lock_path(ctx, env))
        if lock is None:
            continue
        try:
            failed += recover_interrupted(ctx, env, at)
        except SnapkeepError as e:
            log.warning("environment %s: %s", env, e)  # failed, and it stays paused
        finally:
            lock.release()
    return failed


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


def run(ctx: Context, c: Claim, work: Callable[[ActivityRecorder], str | None],
        observer: Observer | None = None, *, stop: threading.Event | None = None) -> Activity:
    """Run ``work`` as the claimed activity; record its end; free the environment.

    Takes this host's lock on the environment unless the claim holds it, and renews the
    lease while ``work`` runs. ``work`` returns the snapshot ID it produced (or None). A
    SnapkeepError is recorded and re-raised; so is anything else, with its message.
    Setting ``stop`` (a worker shutting down) interrupts the activity at its next
    cancellable point.
    """
    a = c.activity
    rec = ActivityRecorder(ctx, a, observer, stop=stop)
    beat = _Heartbeat(ctx, a.id, c.worker, c.lease_seconds, rec.interrupt) if c.worker \
        else None
    if beat:
        beat.start()
    lock = c.lock
    recorded = False  # this process recorded the end: it sends the notification
    budget = notify.END_BUDGET
    try:
        try:
            try:
                if lock is None:
                    lock = _take_lock(ctx, a.environment, wait=LOCK_WAIT)
                    if lock is None:
                        raise BusyError(
                            f"another process on this host holds environment "
                            f"{a.environment}'s lock ({lock_path(ctx, a.environment)}) for "
                            f"over {LOCK_WAIT:.0f} s; the activity was not run")
                    recover_interrupted(ctx, a.environment)
                ctx.catalog.update_activity(a.id, pid=os.getpid())
                if observer:
                    observer.on_start(a)
                snapshot_id = work(rec)
            except BaseException as e:
                recorded = _record_failure(ctx, c, rec, e)
                if not isinstance(e, Exception):  # Ctrl-C: the person wants out
                    budget = notify.SIDE_BUDGET
                raise
            finally:
                if beat:
                    beat.stop()
            rec.seal()
            recorded = ctx.catalog.finish(a.id, c.worker, state="complete", result="success",
                                          completed_at=ctx.clock(), completion_percent=100,
                                          snapshot_id=snapshot_id)
            if not recorded:
                _lost(ctx, a, c.worker)
        finally:
            if lock is not None:
                lock.release()
    finally:
        # After the lock is released: the environment is free while the webhook is called.
        if recorded:
            if stop is not None and stop.is_set():
                budget = notify.SIDE_BUDGET  # the worker is shutting down
            notify.notify_activity_end(ctx, a.id, budget=budget)
    return ctx.catalog.get_activity(a.id) or a


def _record_failure(ctx: Context, c: Claim, rec: ActivityRecorder, e: BaseException) -> bool:
    """Record the activity as failed (or cancelled); False when it was not ours any more."""
    rec.seal()
    msg = str(e) if isinstance(e, SnapkeepError) else f"{type(e).__name__}: {e}"
    msg = rec.redact(msg)  # the error is shown to Viewers as the log is
    state = "complete"
    if isinstance(e, KeyboardInterrupt):
        msg = "cancelled by the user"
    if isinstance(e, Cancelled):
        state = "cancelled"
        rec.log(msg[:1].upper() + msg[1:] + ".")
    else:
        rec.log(f"Failed: {msg}")
    if not ctx.catalog.finish(c.activity.id, c.worker, state=state, result="failure",
                              completed_at=ctx.clock(), error=msg):
        _lost(ctx, c.activity, c.worker)
        return False
    return True


def _lost(ctx: Context, a: Activity, worker: str | None) -> None:
    ctx.catalog.append_log(a.id, f"Worker {worker} no longer held this activity when it "
                                 "ended (its lease had expired); the outcome above was not "
                                 "recorded.")


def list_activities(ctx: Context, environment: str | None, *, limit: int = 20,
                    offset: int = 0) -> list[Activity]:
    """The newest activities (``limit`` after the first ``offset``), of one environment
    or of all."""
    if environment is not None:
        require_role(ctx.actor, environment, Action.ACTIVITY_READ)
    reconcile(ctx)
    return ctx.catalog.list_activities(environment, limit=limit, offset=offset)


def get_activity(ctx: Context, activity_id: str) -> Activity:
    reconcile(ctx)
    a = ctx.catalog.get_activity(activity_id)
    if a is None:
        raise NotFoundError(f"activity {activity_id} does not exist in project {ctx.config.id}; "
                            "see `snapkeep activity:list`")
    require_role(ctx.actor, a.environment, Action.ACTIVITY_READ)
    return a


def activity_log(ctx: Context, activity_id: str, after_id: int = 0) -> list[ActivityLog]:
    get_activity(ctx, activity_id)
    return ctx.catalog.log_lines(activity_id, after_id)


def cancel_activity(ctx: Context, activity_id: str) -> Activity:
    """Cancel an activity (Admin on its environment): a pending one ends at once (state
    cancelled, result failure); a running one is asked to stop and ends cancelled at its
    next safe point — a restore whose cut-over has begun runs to its end. Cancelling a
    cancelled activity changes nothing; a completed one raises PolicyError."""
    a = ctx.catalog.get_activity(activity_id)
    if a is None:
        raise NotFoundError(f"activity {activity_id} does not exist in project {ctx.config.id}; "
                            "see `snapkeep activity:list`")
    require_role(ctx.actor, a.environment, Action.ACTIVITY_CANCEL)
    who = ctx.actor.name
    if a.state in RUNNING:
        queued = a.state == "pending"
        a = ctx.catalog.request_cancel(
            activity_id, who, cancelled_log=f"Cancelled by {who} before it started.",
            requested_log=f"{who} asked to cancel the activity; it stops at its next safe "
                          "point.") or a
        if queued and a.state == "cancelled":  # it ended here (a running one ends later)
            notify.notify_activity_end(ctx, a.id, budget=notify.SIDE_BUDGET)
    if a.state == "complete":
        raise PolicyError(f"activity {activity_id} has already completed (result: {a.result}); "
                          "there is nothing to cancel")
    return a


def is_running(ctx: Context, environment: str) -> bool:
    """Whether an activity holds ``environment`` (on any host) or this host's lock on it."""
    return ctx.catalog.running_activity(environment) is not None or \
        is_locked(lock_path(ctx, environment))
