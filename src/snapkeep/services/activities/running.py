"""Running a claimed activity: its work under this host's lock and a renewed lease, then
recording how it ended and sending the webhook (``run``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from snapkeep.catalog import Activity
from snapkeep.errors import BusyError, Cancelled, SnapkeepError
from snapkeep.services.activities.claims import Claim
from snapkeep.services.activities.info import ActivityInfo
from snapkeep.services.activities.lease import Fence, Heartbeat
from snapkeep.services.activities.locks import LOCK_WAIT, EnvironmentLock, lock_path, take_lock
from snapkeep.services.activities.recorder import ActivityRecorder, Observer
from snapkeep.services.activities.recovery import recover_interrupted
from snapkeep.services.context import Context
from snapkeep.services.notify import webhooks as notify

Work = Callable[[ActivityRecorder], str | None]  # returns the snapshot ID it made, or None


def run(ctx: Context, c: Claim, work: Work, observer: Observer | None = None, *,
        stop: threading.Event | None = None) -> ActivityInfo:
    """Run ``work`` as the claimed activity; record its end; free the environment.

    Takes this host's lock on the environment unless the claim holds it, and renews the
    lease while ``work`` runs. ``work`` returns the snapshot ID it produced (or None). A
    SnapkeepError is recorded and re-raised; so is anything else, with its message.
    Setting ``stop`` (a worker shutting down) interrupts the activity at its next
    cancellable point.
    """
    a = c.activity
    rec = ActivityRecorder(ctx, a, observer, stop=stop)
    beat = None
    if c.worker:
        fence = Fence(ctx, a.id, c.worker, c.lease_seconds)
        rec.fenced_by(fence)
        beat = Heartbeat(ctx, a.id, c.worker, c.lease_seconds, rec.interrupt, fence)
    if beat:
        beat.start()
    lock = c.lock
    recorded = False  # this process recorded the end: it sends the notification
    budget = notify.END_BUDGET
    try:
        try:
            try:
                if lock is None:
                    lock = _lock(ctx, a)
                    recover_interrupted(ctx, a.environment, holder=a.id)
                ctx.catalog.update_activity(a.id, pid=os.getpid())
                if observer:
                    observer.on_start(ActivityInfo.of(a))
                snapshot_id = work(rec)
            except BaseException as e:
                recorded = _record_failure(ctx, c, rec, e)
                if not isinstance(e, Exception):  # Ctrl-C: the person wants out
                    budget = notify.SIDE_BUDGET
                raise
            finally:
                if beat:
                    beat.stop()
            recorded = _record_success(ctx, c, rec, snapshot_id)
        finally:
            if lock is not None:
                lock.release()
    finally:
        # After the lock is released: the environment is free while the webhook is called.
        if recorded:
            if stop is not None and stop.is_set():
                budget = notify.SIDE_BUDGET  # the worker is shutting down
            notify.notify_activity_end(ctx, a.id, budget=budget)
    return ActivityInfo.of(ctx.catalog.get_activity(a.id) or a)


def _lock(ctx: Context, a: Activity) -> EnvironmentLock:
    """This host's lock on the activity's environment, for a claim that does not hold it
    (a queued activity a worker took)."""
    lock = take_lock(ctx, a.environment, wait=LOCK_WAIT)
    if lock is None:
        raise BusyError(
            f"another process on this host holds environment "
            f"{a.environment}'s lock ({lock_path(ctx, a.environment)}) for "
            f"over {LOCK_WAIT:.0f} s; the activity was not run")
    return lock


def _record_success(ctx: Context, c: Claim, rec: ActivityRecorder,
                    snapshot_id: str | None) -> bool:
    rec.seal()
    recorded = ctx.catalog.finish(c.activity.id, c.worker, state="complete", result="success",
                                  completed_at=ctx.clock(), completion_percent=100,
                                  snapshot_id=snapshot_id)
    if not recorded:
        _lost(ctx, c.activity, c.worker)
    return recorded


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
