"""Activities: every mutation runs as one, with an ID, a state, a log and a percentage.

``ActivityRecorder`` is the ``Reporter`` handed to engines: it writes log lines and
(throttled) completion percent to the catalog and forwards both to an optional
observer, which is how the CLI draws its progress bar. It is also where a running
activity stops when someone cancels it (see ``ActivityRecorder``).

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
from typing import Protocol

from snapkeep.catalog import Activity, ActivityLog
from snapkeep.catalog.catalog import now
from snapkeep.errors import (
    BusyError,
    Cancelled,
    Interrupted,
    NotFoundError,
    PolicyError,
    SnapkeepError,
)
from snapkeep.ids import new_id
from snapkeep.policy import Action, require_role
from snapkeep.services import cutover, pause
from snapkeep.services.context import Context
from snapkeep.services.locks import EnvironmentLock, is_locked

BACKUP = "environment.backup"
RESTORE = "environment.restore"
DELETE = "environment.backup.delete"
EXPIRE = "environment.backup.expire"
RUNNING = ("pending", "in_progress")
LEASE_SECONDS = 60.0  # a runner renews every third of it; a silent one is reaped after it
LOCK_WAIT = 30.0  # seconds a runner waits for this host's environment lock
CANCEL_CHECK_INTERVAL = 0.5  # seconds between two reads of the cancel flag

log = logging.getLogger("snapkeep.activities")


def worker_id(n: int | str = 0) -> str:
    """``host:pid:n``: who runs an activity (``n`` tells a process's worker threads apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{n}"


def _worker_host_pid(worker: str) -> tuple[str, int | None]:
    host, _, rest = worker.rpartition(":")  # host may itself hold colons; pid and n do not
    host, _, pid = host.rpartition(":")
    return host, int(pid) if pid.isdigit() else None


class Observer(Protocol):
    def on_start(self, activity: Activity) -> None: ...

    def on_log(self, message: str) -> None: ...

    def on_progress(self, percent: float) -> None: ...


class ActivityRecorder:
    """A thread-safe Reporter that records into the catalog, and the activity's stop point.

    Every ``log`` and ``advance`` looks (at most every ``cancel_interval`` seconds) whether
    the activity was cancelled, and raises ``Cancelled`` if so; it raises ``Interrupted``
    once ``interrupt`` was called (the worker lost its lease) or ``stop`` is set (the
    worker is shutting down). It raises once, and only while the activity is
    cancellable: ``point_of_no_return`` ends that (a restore calls it before its cut-over
    begins, a backup before its manifest commit), after which the activity runs to its
    end and a late cancel request is only noted in the log.
    """

    def __init__(self, ctx: Context, activity: Activity, observer: Observer | None = None,
                 *, min_interval: float = 0.5, cancel_interval: float = CANCEL_CHECK_INTERVAL,
                 stop: threading.Event | None = None) -> None:
        self.ctx = ctx
        self.activity = activity
        self.observer = observer
        self.cancellable = True
        self._lock = threading.Lock()
        self._total = 0
        self._done = 0
        self._last_write = 0.0
        self._last_percent = -1
        self._min_interval = min_interval
        self._cancel_interval = cancel_interval
        self._stop = stop
        self._last_check = 0.0
        self._interrupt: str | None = None
        self._raised = False  # Cancelled/Interrupted raised once already
        self._sealed = False  # the activity is being recorded as ended: no more checks
        self._no_return: str | None = None
        self._too_late_noted = False

    def log(self, message: str) -> None:
        self.ctx.catalog.append_log(self.activity.id, message)
        if self.observer:
            self.observer.on_log(message)
        self.check()

    def add_total(self, units: int) -> None:
        with self._lock:
            self._total += max(0, units)

    def advance(self, units: int) -> None:
        with self._lock:
            self._done += units
            percent = self.percent()
            t = time.monotonic()
            write = (int(percent) != self._last_percent
                     and t - self._last_write >= self._min_interval)
            if write:
                self._last_write, self._last_percent = t, int(percent)
        if write:
            self.ctx.catalog.update_activity(self.activity.id, completion_percent=int(percent))
        if self.observer:
            self.observer.on_progress(percent)
        self.check()

    def percent(self) -> float:
        if self._total <= 0:
            return 0.0
        return min(99.0, 100.0 * self._done / self._total)

    def point_of_no_return(self, what: str) -> None:
        """The last point where the activity may stop (raises as ``check`` does, without
        the throttle); from here on a cancel request does not stop it: ``what`` begins."""
        with self._lock:
            self._last_check = 0.0
        self.check()
        with self._lock:
            self.cancellable = False
            self._no_return = what

    def interrupt(self, reason: str) -> None:
        """Stop the activity at its next check (called from another thread)."""
        self._interrupt = reason

    def seal(self) -> None:
        """No more checks: the activity is being recorded as ended. A cancel request
        that came after its point of no return and was not noted yet is noted now."""
        with self._lock:
            if self._sealed:
                return
            self._sealed = True
            late = self._no_return is not None and not self._too_late_noted
        who = self._cancelled_by() if late else None
        if who is not None:
            self._note_too_late(who)

    def check(self) -> None:
        """Raise ``Cancelled``/``Interrupted`` if the activity should stop here."""
        if self._stop is not None and self._stop.is_set() and self._interrupt is None:
            self._interrupt = "the worker running it was stopped before the activity ended; " \
                "start it again"
        t = time.monotonic()
        with self._lock:
            if self._sealed or self._raised or self._too_late_noted:
                return
            interrupt = self._interrupt if self.cancellable else None
            if interrupt is None and t - self._last_check < self._cancel_interval:
                return
            self._last_check = t
            cancellable = self.cancellable
        who = None if interrupt else self._cancelled_by()
        with self._lock:
            if self._sealed or self._raised or self._too_late_noted:
                return
            if not cancellable:
                if who is None:
                    return
                self._too_late_noted = True
            elif interrupt is None and who is None:
                return
            else:
                self._raised = True
        if not cancellable:
            self._note_too_late(who)
            return
        if interrupt is not None:
            raise Interrupted(interrupt)
        raise Cancelled(f"cancelled by {who}")

    def _cancelled_by(self) -> str | None:
        try:
            return self.ctx.catalog.cancel_requested_by(self.activity.id)
        except Exception:  # noqa: BLE001 - a catalog hiccup must not fail the activity
            log.warning("could not read the cancel flag of activity %s", self.activity.id)
            return None

    def _note_too_late(self, who: str | None) -> None:
        self._note(f"{who} asked to cancel, too late: {self._no_return} has begun, so the "
                   "activity runs to its end.")

    def _note(self, message: str) -> None:
        self.ctx.catalog.append_log(self.activity.id, message)
        if self.observer:
            self.observer.on_log(message)


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


def lock_path(ctx: Context, environment: str) -> Path:
    return ctx.state_path("locks", f"{environment}.lock")


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
                 description=description, created_at=now(), completion_percent=0,
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


def _process_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rpartition(")")[2].split()[0] == "Z":
                return True  # killed, not yet reaped by its parent
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _runner_gone(a: Activity) -> bool:
    """Whether the process running ``a`` is known dead, seen from this host (lock held)."""
    if not a.worker:
        return True  # recorded before leases: the lock being free says its runner is gone
    host, pid = _worker_host_pid(a.worker)
    if host != socket.gethostname() or pid is None:
        return False  # another host's: its lease decides (reap_expired)
    return _process_gone(pid)


def _settle(ctx: Context, environment: str, log_line: Callable[[str], None]) -> None:
    """Settle a restore cut-over and lift a pause that a dead runner on this host left.

    Call with this host's lock on ``environment`` held. Raises (SnapkeepError) when the
    cut-over cannot be settled yet; the environment then stays paused.
    """
    cutover.recover(ctx, environment, log_line)
    if pause.lift_leftover(ctx, environment):
        log_line(f"Lifted the pause the interrupted activity left on {environment}.")


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
    left on this host. Returns the IDs failed.

    Activities of live runners and pending ones (queued) are left alone. If the cut-over
    cannot be settled yet (its database is unreachable), this fails them saying so and
    raises: the environment stays paused, better in maintenance than serving mixed data.
    """
    at = at or now()
    running = ctx.catalog.list_activities(environment, states=("in_progress",), limit=100)
    expired = [a for a in running if a.lease_expires_at is not None and a.lease_expires_at < at]
    dead = [a for a in running if a not in expired and _runner_gone(a)]

    def log_line(message: str) -> None:
        for a in dead + expired:
            ctx.catalog.append_log(a.id, message)

    def fail(unsettled: str = "") -> list[str]:
        failed = []
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
        return failed

    # Settled before the activity is marked failed: a failed restore means "settled".
    try:
        _settle(ctx, environment, log_line)
    except SnapkeepError as e:
        fail(f"; its cut-over is not settled yet ({e}), so the environment stays paused "
             "until a command can reach it")
        raise
    return fail()


def reap_expired(ctx: Context, at: datetime | None = None) -> list[str]:
    """Fail running activities whose lease expired before ``at`` (their worker died or
    hung, on any host), after settling the cut-over or pause they left on this host, and
    free their environments (``recover_interrupted`` per environment). Skips an
    environment whose lock a process on this host holds (it is running there; its own end
    or death settles it). Returns the IDs failed."""
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
    try:
        try:
            if lock is None:
                lock = _take_lock(ctx, a.environment, wait=LOCK_WAIT)
                if lock is None:
                    raise BusyError(f"another process on this host holds environment "
                                    f"{a.environment}'s lock ({lock_path(ctx, a.environment)})"
                                    f" for over {LOCK_WAIT:.0f} s; the activity was not run")
                recover_interrupted(ctx, a.environment)
            ctx.catalog.update_activity(a.id, pid=os.getpid())
            if observer:
                observer.on_start(a)
            snapshot_id = work(rec)
        except BaseException as e:
            _record_failure(ctx, c, rec, e)
            raise
        finally:
            if beat:
                beat.stop()
        rec.seal()
        if not ctx.catalog.finish(a.id, c.worker, state="complete", result="success",
                                  completed_at=now(), completion_percent=100,
                                  snapshot_id=snapshot_id):
            _lost(ctx, a, c.worker)
    finally:
        if lock is not None:
            lock.release()
    return ctx.catalog.get_activity(a.id) or a


def _record_failure(ctx: Context, c: Claim, rec: ActivityRecorder, e: BaseException) -> None:
    rec.seal()
    msg = str(e) if isinstance(e, SnapkeepError) else f"{type(e).__name__}: {e}"
    state = "complete"
    if isinstance(e, KeyboardInterrupt):
        msg = "cancelled by the user"
    if isinstance(e, Cancelled):
        state = "cancelled"
        rec.log(msg[:1].upper() + msg[1:] + ".")
    else:
        rec.log(f"Failed: {msg}")
    if not ctx.catalog.finish(c.activity.id, c.worker, state=state, result="failure",
                              completed_at=now(), error=msg):
        _lost(ctx, c.activity, c.worker)


def _lost(ctx: Context, a: Activity, worker: str | None) -> None:
    ctx.catalog.append_log(a.id, f"Worker {worker} no longer held this activity when it "
                                 "ended (its lease had expired); the outcome above was not "
                                 "recorded.")


def list_activities(ctx: Context, environment: str | None, *, limit: int = 20) -> list[Activity]:
    if environment is not None:
        require_role(ctx.actor, environment, Action.ACTIVITY_READ)
    reconcile(ctx)
    return ctx.catalog.list_activities(environment, limit=limit)


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
        a = ctx.catalog.request_cancel(
            activity_id, who, cancelled_log=f"Cancelled by {who} before it started.",
            requested_log=f"{who} asked to cancel the activity; it stops at its next safe "
                          "point.") or a
    if a.state == "complete":
        raise PolicyError(f"activity {activity_id} has already completed (result: {a.result}); "
                          "there is nothing to cancel")
    return a


def is_running(ctx: Context, environment: str) -> bool:
    """Whether an activity holds ``environment`` (on any host) or this host's lock on it."""
    return ctx.catalog.running_activity(environment) is not None or \
        is_locked(lock_path(ctx, environment))
