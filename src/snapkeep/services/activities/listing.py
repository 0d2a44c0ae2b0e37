"""Reading and cancelling activities, as the actor: what front ends list and show.

Every read first ends the activities whose runner is gone (``recovery.reconcile``), so
a listing never shows a dead process's activity as running.
"""

from __future__ import annotations

from snapkeep.catalog import Activity
from snapkeep.errors import NotFoundError, PolicyError
from snapkeep.policy import Action, require_role
from snapkeep.services.activities.info import RUNNING, ActivityInfo, LogLine
from snapkeep.services.activities.locks import is_locked, lock_path
from snapkeep.services.activities.recovery import reconcile
from snapkeep.services.context import Context
from snapkeep.services.notify import webhooks as notify


def list_activities(ctx: Context, environment: str | None, *, limit: int = 20,
                    offset: int = 0) -> list[ActivityInfo]:
    """The newest activities (``limit`` after the first ``offset``), of one environment
    or of all."""
    if environment is not None:
        require_role(ctx.actor, environment, Action.ACTIVITY_READ)
    reconcile(ctx)
    return [ActivityInfo.of(a) for a in
            ctx.catalog.list_activities(environment, limit=limit, offset=offset)]


def _existing(ctx: Context, activity_id: str) -> Activity:
    a = ctx.catalog.get_activity(activity_id)
    if a is None:
        raise NotFoundError(f"activity {activity_id} does not exist in project {ctx.config.id}; "
                            "see `snapkeep activity:list`")
    return a


def get_activity(ctx: Context, activity_id: str) -> ActivityInfo:
    reconcile(ctx)
    a = _existing(ctx, activity_id)
    require_role(ctx.actor, a.environment, Action.ACTIVITY_READ)
    return ActivityInfo.of(a)


def activity_log(ctx: Context, activity_id: str, after_id: int = 0) -> list[LogLine]:
    get_activity(ctx, activity_id)
    return [LogLine.of(line) for line in ctx.catalog.log_lines(activity_id, after_id)]


def cancel_activity(ctx: Context, activity_id: str) -> ActivityInfo:
    """Cancel an activity (Admin on its environment): a pending one ends at once (state
    cancelled, result failure); a running one is asked to stop and ends cancelled at its
    next safe point — a restore whose cut-over has begun runs to its end. Cancelling a
    cancelled activity changes nothing; a completed one raises PolicyError."""
    a = _existing(ctx, activity_id)
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
    return ActivityInfo.of(a)


def is_running(ctx: Context, environment: str) -> bool:
    """Whether an activity holds ``environment`` (on any host) or this host's lock on it."""
    return ctx.catalog.running_activity(environment) is not None or \
        is_locked(lock_path(ctx, environment))
