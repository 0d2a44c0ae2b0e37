"""Catalog access for the activity queue: enqueue, claim (SKIP LOCKED), leases, cancel.

One activity runs per environment at a time, on whichever host: the guard is the
``environments.running_activity`` column, set when an activity is claimed and cleared in
the same transaction that finishes (or fails) it.

Claiming is atomic on both databases:

- PostgreSQL (READ COMMITTED): the oldest eligible pending activity is locked with
  ``SELECT … FOR UPDATE SKIP LOCKED`` (two workers never lock the same row), then the
  environment is taken with ``UPDATE environments SET running_activity = :id WHERE name =
  :env AND running_activity IS NULL``. Its row count decides: a worker that raced another
  for the same environment waits on the row lock, re-evaluates the condition on the
  committed row, updates nothing, and tries another environment.
- SQLite: the whole claim runs in ``BEGIN IMMEDIATE``, which admits one writer at a time.

Within an environment activities run oldest first: a pending activity is eligible only
when no older one of its environment is pending.

Times are read from the catalog's clock (the host's UTC clock outside tests): hosts
sharing a catalog need synchronised clocks (NTP); a skew well below the lease length is
harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import aliased

from snapkeep.catalog.base import CatalogBase, rows_changed
from snapkeep.catalog.models import Activity, ActivityLog, EnvironmentState
from snapkeep.catalog.times import aware, utc

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

LIVE = ("pending", "in_progress")
MAX_CLAIM_TRIES = 50  # environments skipped in one claim because another worker took them


class QueueMixin(CatalogBase):
    # -- adding work ---------------------------------------------------------------------

    def enqueue(self, activity: Activity, *, unless_busy: bool = False,
                unless_waiting: bool = False) -> Activity | None:
        """Add ``activity`` as pending, and return None; or add nothing and return the
        activity that stops it: with ``unless_busy``, any pending or running one of its
        environment; with ``unless_waiting``, one of the same type and actor already
        waiting there (a schedule that fires while its last backup waits adds no second)."""
        with self._queue_tx() as s:
            if unless_busy or unless_waiting:
                self._lock_environment(s, activity.environment)
                blocker = self._live_activity(s, activity.environment) if unless_busy \
                    else self._waiting_twin(s, activity)
                if blocker is not None:
                    return utc(blocker)
            activity.state = "pending"
            activity.cancel_requested = False
            s.add(activity)
        return None

    def start(self, activity: Activity, worker_id: str, lease_seconds: float,
              pid: int | None = None) -> Activity | None:
        """Add ``activity`` already running (in_progress, owned by ``worker_id``, its lease
        ``lease_seconds`` long) and take its environment — unless the environment has a
        pending or running activity: then add nothing and return that one; else None."""
        with self._queue_tx() as s:
            env = self._lock_environment(s, activity.environment)
            blocker = self._live_activity(s, activity.environment)
            if blocker is not None:
                return utc(blocker)
            at = self.clock()
            activity.state, activity.worker, activity.pid = "in_progress", worker_id, pid
            activity.started_at = activity.started_at or at
            activity.lease_expires_at = at + timedelta(seconds=lease_seconds)
            activity.cancel_requested = False
            s.add(activity)
            env.running_activity = activity.id  # a stale value had no live activity behind it
        return None

    # -- claiming ------------------------------------------------------------------------

    def claim_next(self, worker_id: str, lease_seconds: float,
                   environments: Sequence[str] | None = None) -> Activity | None:
        """Take the oldest pending activity whose environment runs nothing, as
        ``worker_id``; None when there is none. See the module docstring."""
        return self._claim(worker_id, lease_seconds, environments=environments)

    def claim_specific(self, activity_id: str, worker_id: str,
                       lease_seconds: float) -> Activity | None:
        """Take exactly this activity if it is pending, its environment runs nothing and no
        older activity of its environment is pending; else None (try again later, or it
        was taken, cancelled or finished: read it to know)."""
        return self._claim(worker_id, lease_seconds, activity_id=activity_id)

    def _claim(self, worker_id: str, lease_seconds: float, *,
               environments: Sequence[str] | None = None,
               activity_id: str | None = None) -> Activity | None:
        older = aliased(Activity)
        busy = select(EnvironmentState.name).where(EnvironmentState.running_activity.is_not(None))
        skipped: set[str] = set()
        with self._queue_tx() as s:
            for _ in range(MAX_CLAIM_TRIES):
                q = (select(Activity)
                     .where(Activity.state == "pending", Activity.environment.not_in(busy))
                     .where(~exists().where(
                         older.environment == Activity.environment, older.state == "pending",
                         or_(older.created_at < Activity.created_at,
                             and_(older.created_at == Activity.created_at,
                                  older.id < Activity.id))))
                     .order_by(Activity.created_at, Activity.id).limit(1))
                if activity_id is not None:
                    q = q.where(Activity.id == activity_id)
                if environments is not None:
                    q = q.where(Activity.environment.in_(list(environments)))
                if skipped:
                    q = q.where(Activity.environment.not_in(skipped))
                if not self.is_sqlite:
                    q = q.with_for_update(skip_locked=True, of=Activity)
                a = s.scalars(q).first()
                if a is None:
                    return None
                if self._take_environment(s, a.environment, a.id):
                    at = self.clock()
                    a.state, a.worker, a.started_at = "in_progress", worker_id, at
                    a.lease_expires_at = at + timedelta(seconds=lease_seconds)
                    return utc(a)
                skipped.add(a.environment)  # another worker took it a moment ago
        return None

    def _ensure_environment(self, s: Session, name: str) -> None:
        # the dialect's insert (for ON CONFLICT) imported here: loading both dialects costs
        # ~0.03 s of every command's start-up (docs/performance.md)
        if self.is_sqlite:
            from sqlalchemy.dialects import sqlite as dialect
        else:
            from sqlalchemy.dialects import postgresql as dialect  # type: ignore[no-redef]
        s.execute(dialect.insert(EnvironmentState)
                  .values(name=name, status="active", updated_at=self.clock())
                  .on_conflict_do_nothing(index_elements=["name"]))

    def _lock_environment(self, s: Session, name: str) -> EnvironmentState:
        """The environment's row, locked to the end of the transaction (created if missing):
        starting an activity on it is decided by one transaction at a time."""
        self._ensure_environment(s, name)
        q = select(EnvironmentState).where(EnvironmentState.name == name)
        if not self.is_sqlite:
            q = q.with_for_update()
        return s.scalars(q).one()

    def _take_environment(self, s: Session, name: str, activity_id: str) -> bool:
        self._ensure_environment(s, name)
        res = s.execute(update(EnvironmentState)
                        .where(EnvironmentState.name == name,
                               EnvironmentState.running_activity.is_(None))
                        .values(running_activity=activity_id)
                        .execution_options(synchronize_session=False))
        return rows_changed(res) == 1

    @staticmethod
    def _live_activity(s: Session, environment: str) -> Activity | None:
        q = (select(Activity).where(Activity.environment == environment,
                                    Activity.state.in_(LIVE))
             .order_by(Activity.state, Activity.created_at).limit(1))  # in_progress first
        return s.scalars(q).first()

    @staticmethod
    def _waiting_twin(s: Session, activity: Activity) -> Activity | None:
        q = (select(Activity).where(Activity.environment == activity.environment,
                                    Activity.state == "pending",
                                    Activity.type == activity.type,
                                    Activity.actor == activity.actor).limit(1))
        return s.scalars(q).first()

    # -- while it runs -------------------------------------------------------------------

    def renew_lease(self, activity_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Extend the lease; False when ``worker_id`` no longer owns a running activity
        (it was reaped as interrupted): the worker must stop it."""
        with self.session() as s:
            until = self.clock() + timedelta(seconds=lease_seconds)
            res = s.execute(update(Activity)
                            .where(Activity.id == activity_id, Activity.worker == worker_id,
                                   Activity.state == "in_progress")
                            .values(lease_expires_at=until)
                            .execution_options(synchronize_session=False))
            return rows_changed(res) == 1

    def finish(self, activity_id: str, worker_id: str | None, *, state: str,
               result: str | None, **fields: Any) -> bool:
        """End a running activity (``state`` complete or cancelled) and free its environment,
        in one transaction. With ``worker_id``, only while that worker still owns it;
        False when it did not (it was reaped meanwhile), and nothing is changed."""
        with self._queue_tx() as s:
            a = self._locked_activity(s, activity_id)
            if a is None or a.state not in LIVE or (worker_id and a.worker != worker_id):
                return False
            for k, v in fields.items():
                setattr(a, k, v)
            a.state, a.result = state, result
            a.completed_at = a.completed_at or self.clock()
            self._free_environment(s, a.environment, a.id)
            return True

    def fail_interrupted(self, activity_id: str, error: str, *, log: str | None = None,
                         lease_expired_before: datetime | None = None) -> bool:
        """Mark a running activity whose runner is gone as failed, with ``log`` as its last
        log line, and free its environment, in one transaction. With
        ``lease_expired_before``, only if its lease still ends before that instant (a
        renewal that came in meanwhile wins). False when nothing was changed."""
        with self._queue_tx() as s:
            a = self._locked_activity(s, activity_id)
            if a is None or a.state != "in_progress":
                return False
            expiry = aware(a.lease_expires_at)
            if lease_expired_before is not None and (expiry is None
                                                     or expiry >= lease_expired_before):
                return False
            at = self.clock()
            a.state, a.result, a.completed_at, a.error = "complete", "failure", at, error
            if log:
                s.add(ActivityLog(activity_id=a.id, at=at, message=log))
            self._free_environment(s, a.environment, a.id)
            return True

    def expired_leases(self, at: datetime | None = None) -> list[Activity]:
        """Running activities whose lease ended before ``at`` (default: now)."""
        q = (select(Activity).where(Activity.state == "in_progress",
                                    Activity.lease_expires_at < (at or self.clock()))
             .order_by(Activity.lease_expires_at))
        with self.session() as s:
            return [utc(a) for a in s.scalars(q)]

    def running_activity(self, environment: str) -> str | None:
        """The ID of the activity that holds ``environment``, if any."""
        with self.session() as s:
            row = s.get(EnvironmentState, environment)
            return row.running_activity if row else None

    def _locked_activity(self, s: Session, activity_id: str) -> Activity | None:
        q = select(Activity).where(Activity.id == activity_id)
        if not self.is_sqlite:
            q = q.with_for_update()
        return s.scalars(q).first()

    @staticmethod
    def _free_environment(s: Session, environment: str, activity_id: str) -> None:
        s.execute(update(EnvironmentState)
                  .where(EnvironmentState.name == environment,
                         EnvironmentState.running_activity == activity_id)
                  .values(running_activity=None)
                  .execution_options(synchronize_session=False))

    # -- cancelling ----------------------------------------------------------------------

    def request_cancel(self, activity_id: str, by: str, *, cancelled_log: str,
                       requested_log: str) -> Activity | None:
        """Cancel a pending activity at once (state cancelled, result failure, last log line
        ``cancelled_log``), or flag a running one (``cancel_requested``, logging
        ``requested_log``; its runner stops at its next safe point). Finished activities
        are left alone. Returns the activity as it now is, or None if it does not exist."""
        with self._queue_tx() as s:
            a = self._locked_activity(s, activity_id)
            if a is None:
                return None
            message = None
            if a.state == "pending":
                a.state, a.result, a.completed_at = "cancelled", "failure", self.clock()
                a.error, message = f"cancelled by {by}", cancelled_log
            elif a.state == "in_progress" and not a.cancel_requested:
                a.cancel_requested = True
                a.parameters = {**(a.parameters or {}), "cancelled_by": by}
                message = requested_log
            if message:
                s.add(ActivityLog(activity_id=a.id, at=self.clock(), message=message))
            return utc(a)

    def cancel_requested_by(self, activity_id: str) -> str | None:
        """Who asked to cancel this running activity, or None if nobody did."""
        with self.session() as s:
            row = s.execute(select(Activity.cancel_requested, Activity.parameters)
                            .where(Activity.id == activity_id)).first()
        if row is None or not row.cancel_requested:
            return None
        return str((row.parameters or {}).get("cancelled_by") or "someone")
