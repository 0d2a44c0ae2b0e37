"""Activities: every mutation runs as one, with an ID, a state, a log and a percentage.

``ActivityRecorder`` is the ``Reporter`` handed to engines: it writes log lines and
(throttled) completion percent to the catalog and forwards both to an optional
observer, which is how the CLI draws its progress bar.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from snapkeep.catalog import Activity, ActivityLog
from snapkeep.catalog.catalog import now
from snapkeep.errors import BusyError, NotFoundError, SnapkeepError
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


class Observer(Protocol):
    def on_start(self, activity: Activity) -> None: ...

    def on_log(self, message: str) -> None: ...

    def on_progress(self, percent: float) -> None: ...


class ActivityRecorder:
    """A thread-safe Reporter that records into the catalog."""

    def __init__(self, ctx: Context, activity: Activity, observer: Observer | None = None,
                 *, min_interval: float = 0.5) -> None:
        self.ctx = ctx
        self.activity = activity
        self.observer = observer
        self._lock = threading.Lock()
        self._total = 0
        self._done = 0
        self._last_write = 0.0
        self._last_percent = -1
        self._min_interval = min_interval

    def log(self, message: str) -> None:
        self.ctx.catalog.append_log(self.activity.id, message)
        if self.observer:
            self.observer.on_log(message)

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

    def percent(self) -> float:
        if self._total <= 0:
            return 0.0
        return min(99.0, 100.0 * self._done / self._total)


@dataclass
class Claim:
    """A started activity and the environment lock held while it runs."""

    activity: Activity
    lock: EnvironmentLock


def lock_path(ctx: Context, environment: str) -> Path:
    return ctx.state_path("locks", f"{environment}.lock")


def claim(ctx: Context, environment: str, type_: str, description: str,
          parameters: dict, *, state: str = "in_progress") -> Claim:
    """Take the environment's lock and record a new activity, or raise BusyError."""
    lock = EnvironmentLock.try_acquire(lock_path(ctx, environment))
    if lock is None:
        running = ctx.catalog.list_activities(environment, states=RUNNING, limit=1)
        which = f"activity {running[0].id} ({running[0].description})" if running else \
            "another activity"
        raise BusyError(
            f"{which} is running on environment {environment}; only one activity runs per "
            f"environment at a time. Wait for it (`snapkeep activity:list -e {environment}`) "
            "and try again.")
    try:
        recover_interrupted(ctx, environment)
        activity = Activity(
            id=new_id(), environment=environment, type=type_, state=state, result=None,
            description=description, created_at=now(),
            started_at=now() if state == "in_progress" else None,
            completion_percent=0, parameters=parameters, pid=None)
        ctx.catalog.add_activity(activity)
    except BaseException:
        lock.release()
        raise
    return Claim(activity, lock)


def recover_interrupted(ctx: Context, environment: str) -> None:
    """With the lock held: fail activities whose process died, settle a restore cut-over
    they left half done, lift a pause they left.

    If the cut-over cannot be settled yet (its database is unreachable), this raises and
    the environment stays paused: better in maintenance than serving mixed data.
    """
    dead = ctx.catalog.list_activities(environment, states=RUNNING, limit=100)

    def log(message: str) -> None:
        for a in dead:
            ctx.catalog.append_log(a.id, message)

    def fail(error: str) -> None:
        log(f"The activity was interrupted ({error}).")
        for a in dead:
            ctx.catalog.update_activity(a.id, state="complete", result="failure",
                                        completed_at=now(), error=f"interrupted: {error}")

    # Settled before the activity is marked failed: a failed restore means "settled".
    try:
        cutover.recover(ctx, environment, log)
    except SnapkeepError as e:
        fail(f"its process ended; its cut-over is not settled yet ({e}), so the "
             "environment stays paused until a command can reach it")
        raise
    pause.lift_leftover(ctx, environment)
    fail("the process running it ended")


def reconcile(ctx: Context) -> None:
    """Mark activities of dead processes as failed, for every environment with one running."""
    envs = {a.environment for a in ctx.catalog.list_activities(states=RUNNING, limit=500)}
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
        observer: Observer | None = None) -> Activity:
    """Run ``work`` as the claimed activity; record success or failure; release the lock.

    ``work`` returns the snapshot ID it produced (or None). A SnapkeepError is recorded
    and re-raised; so is anything else, with its message.
    """
    a = c.activity
    ctx.catalog.update_activity(a.id, state="in_progress", started_at=a.started_at or now(),
                                pid=os.getpid())
    rec = ActivityRecorder(ctx, a, observer)
    if observer:
        observer.on_start(a)
    try:
        snapshot_id = work(rec)
    except BaseException as e:
        msg = str(e) if isinstance(e, SnapkeepError) else f"{type(e).__name__}: {e}"
        if isinstance(e, KeyboardInterrupt):
            msg = "cancelled by the user"
        rec.log(f"Failed: {msg}")
        ctx.catalog.update_activity(a.id, state="complete", result="failure", completed_at=now(),
                                    error=msg)
        c.lock.release()
        raise
    ctx.catalog.update_activity(a.id, state="complete", result="success", completed_at=now(),
                                completion_percent=100, snapshot_id=snapshot_id)
    c.lock.release()
    return ctx.catalog.get_activity(a.id)


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


def is_running(ctx: Context, environment: str) -> bool:
    return is_locked(lock_path(ctx, environment))
