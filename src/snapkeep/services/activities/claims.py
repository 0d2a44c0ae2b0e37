"""Starting an activity: recording it, started at once or queued, once the environment is
free (``claim``).

One activity runs per environment at a time, guarded twice:

- in the catalog, by ``environments.running_activity`` (catalog/queue.py): taken when an
  activity starts or is claimed from the queue, freed when it ends. Every host that
  shares the catalog obeys it;
- on this host, by an exclusive ``flock`` on ``.snapkeep/locks/<env>.lock``, held by the
  process running the activity. The kernel drops it when that process dies, so the
  pause and the restore cut-over it left can be settled at once
  (``recovery.recover_interrupted``), by its pause guard or the next command, without
  waiting for its lease.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from snapkeep.catalog import Activity
from snapkeep.errors import BusyError
from snapkeep.ids import new_id
from snapkeep.services.activities.info import RUNNING
from snapkeep.services.activities.lease import LEASE_SECONDS, worker_id
from snapkeep.services.activities.locks import LOCK_WAIT, EnvironmentLock, lock_path, take_lock
from snapkeep.services.activities.recovery import recover_interrupted
from snapkeep.services.context import Context


@dataclass
class Claim:
    """A started activity: who owns its lease and, when held already, this host's lock."""

    activity: Activity
    lock: EnvironmentLock | None
    worker: str | None = None  # None only for activities recorded before leases existed
    lease_seconds: float = LEASE_SECONDS


def busy(ctx: Context, environment: str, blocker: Activity | None) -> BusyError:
    """The refusal to start another activity on ``environment``, naming what holds it."""
    if blocker is None:
        blockers = ctx.catalog.list_activities(environment, states=RUNNING, limit=1)
        blocker = blockers[0] if blockers else None
    which = f"activity {blocker.id} ({blocker.description})" if blocker else "another activity"
    doing = "is waiting to run" if blocker and blocker.state == "pending" else "is running"
    return BusyError(
        f"{which} {doing} on environment {environment}; only one activity runs per "
        f"environment at a time. Wait for it (`snapkeep activity:list -e {environment}`) "
        "and try again.")


def claim(ctx: Context, environment: str, type_: str, description: str,
          parameters: dict, *, state: str = "in_progress", unless_busy: bool = True,
          unless_waiting: bool = False, lease_seconds: float = LEASE_SECONDS) -> Claim:
    """Record a new activity, started at once (``in_progress``: this process runs it, and
    holds this host's lock) or queued for a worker (``pending``).

    Raises BusyError when the environment already has an activity pending or running —
    for a queued one only with ``unless_busy``: without, it queues behind what is there
    (a schedule) — with ``unless_waiting``, unless the same actor's activity of this type
    is already waiting (a schedule firing again adds no second one).
    Before that, settles what an interrupted activity left (``recovery``).
    """
    a = Activity(id=new_id(), environment=environment, type=type_, state=state, result=None,
                 description=description, created_at=ctx.clock(), completion_percent=0,
                 parameters=parameters, pid=None, actor=ctx.actor.name)
    if state != "in_progress":
        return _enqueue(ctx, a, unless_busy, unless_waiting, lease_seconds)
    return _start(ctx, a, lease_seconds)


def _enqueue(ctx: Context, a: Activity, unless_busy: bool, unless_waiting: bool,
             lease_seconds: float) -> Claim:
    if unless_busy:  # settle leftovers when the lock is free; never wait for it
        lock = EnvironmentLock.try_acquire(lock_path(ctx, a.environment))
        if lock is not None:
            try:
                recover_interrupted(ctx, a.environment)
            finally:
                lock.release()
    blocker = ctx.catalog.enqueue(a, unless_busy=unless_busy, unless_waiting=unless_waiting)
    if blocker is not None:
        raise busy(ctx, a.environment, blocker)
    return Claim(a, None, None, lease_seconds)


def _start(ctx: Context, a: Activity, lease_seconds: float) -> Claim:
    # A process on this host holds the lock: refuse at once if the catalog says why,
    # else it is a moment's holder (a guard, a listing) and worth waiting for.
    environment = a.environment
    lock = EnvironmentLock.try_acquire(lock_path(ctx, environment))
    if lock is None:
        if ctx.catalog.list_activities(environment, states=RUNNING, limit=1):
            raise busy(ctx, environment, None)
        lock = take_lock(ctx, environment, wait=LOCK_WAIT)
        if lock is None:
            raise busy(ctx, environment, None)
    try:
        recover_interrupted(ctx, environment)
        me = worker_id(ctx, 0)
        blocker = ctx.catalog.start(a, me, lease_seconds, pid=os.getpid())
        if blocker is not None:
            raise busy(ctx, environment, blocker)
    except BaseException:
        lock.release()
        raise
    return Claim(a, lock, me, lease_seconds)
