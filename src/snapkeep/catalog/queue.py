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

The statements are ``catalog/sql.py``'s: one text for both databases. Each names the
catalog's project (``:p``): environments of the same name in two projects are two
environments, each with its own guard and queue.

Times are read from the catalog's clock (the host's UTC clock outside tests): hosts
sharing a catalog need synchronised clocks (NTP); a skew well below the lease length is
harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from snapkeep.catalog import sql
from snapkeep.catalog.base import CatalogBase
from snapkeep.catalog.rows import Activity
from snapkeep.catalog.sql import Tx

LIVE = ("pending", "in_progress")
MAX_CLAIM_TRIES = 50  # environments skipped in one claim because another worker took them

# the oldest pending activity of an environment that runs nothing (module docstring)
_ELIGIBLE = (
    "WHERE a.project = :p AND a.state = 'pending' AND a.environment NOT IN "
    "(SELECT name FROM environments WHERE project = :p AND running_activity IS NOT NULL) "
    "AND NOT EXISTS (SELECT 1 FROM activities o WHERE o.project = a.project "
    "AND o.environment = a.environment "
    "AND o.state = 'pending' AND (o.created_at < a.created_at "
    "OR (o.created_at = a.created_at AND o.id < a.id)))")


class QueueMixin(CatalogBase):
    # -- adding work ---------------------------------------------------------------------

    def enqueue(self, activity: Activity, *, unless_busy: bool = False,
                unless_waiting: bool = False) -> Activity | None:
        """Add ``activity`` as pending, and return None; or add nothing and return the
        activity that stops it: with ``unless_busy``, any pending or running one of its
        environment; with ``unless_waiting``, one of the same type and actor already
        waiting there (a schedule that fires while its last backup waits adds no second)."""
        activity.project = self.project
        with self._sql("queue") as tx:
            if unless_busy or unless_waiting:
                self._lock_environment(tx, activity.environment)
                blocker = self._live_activity(tx, activity.environment) if unless_busy \
                    else self._waiting_twin(tx, activity)
                if blocker is not None:
                    return blocker
            activity.state = "pending"
            activity.cancel_requested = False
            sql.insert(tx, activity)
        return None

    def start(self, activity: Activity, worker_id: str, lease_seconds: float,
              pid: int | None = None) -> Activity | None:
        """Add ``activity`` already running (in_progress, owned by ``worker_id``, its lease
        ``lease_seconds`` long) and take its environment — unless the environment has a
        pending or running activity: then add nothing and return that one; else None."""
        activity.project = self.project
        with self._sql("queue") as tx:
            self._lock_environment(tx, activity.environment)
            blocker = self._live_activity(tx, activity.environment)
            if blocker is not None:
                return blocker
            at = self.clock()
            activity.state, activity.worker, activity.pid = "in_progress", worker_id, pid
            activity.started_at = activity.started_at or at
            activity.lease_expires_at = at + timedelta(seconds=lease_seconds)
            activity.cancel_requested = False
            sql.insert(tx, activity)
            # a stale value had no live activity behind it
            tx.run("UPDATE environments SET running_activity = :id "
                   "WHERE project = :p AND name = :name",
                   {"id": activity.id, "p": self.project, "name": activity.environment})
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
        skipped: list[str] = []
        with self._sql("queue") as tx:
            for _ in range(MAX_CLAIM_TRIES):
                where, params = _ELIGIBLE, {"p": self.project}
                if activity_id is not None:
                    where += " AND a.id = :id"
                    params["id"] = activity_id
                if environments is not None:
                    names, values = sql.in_list("env", list(environments))
                    where += f" AND a.environment IN {names}"
                    params.update(values)
                if skipped:
                    names, values = sql.in_list("skip", skipped)
                    where += f" AND a.environment NOT IN {names}"
                    params.update(values)
                where += " ORDER BY a.created_at, a.id LIMIT 1"
                if not tx.is_sqlite:
                    where += " FOR UPDATE OF a SKIP LOCKED"
                a = sql.first(tx, Activity, sql.select(Activity, where, alias="a"), params)
                if a is None:
                    return None
                if self._take_environment(tx, a.environment, a.id):
                    at = self.clock()
                    a.state, a.worker, a.started_at = "in_progress", worker_id, at
                    a.lease_expires_at = at + timedelta(seconds=lease_seconds)
                    tx.run("UPDATE activities SET state = :state, worker = :worker, "
                           "started_at = :at, lease_expires_at = :until WHERE id = :id "
                           "AND project = :p",
                           {"state": a.state, "worker": worker_id, "at": at,
                            "until": a.lease_expires_at, "id": a.id, "p": self.project})
                    return a
                skipped.append(a.environment)  # another worker took it a moment ago
        return None

    def _ensure_environment(self, tx: Tx, name: str) -> None:
        tx.run("INSERT INTO environments (project, name, status, updated_at) "
               "VALUES (:p, :name, 'active', :at) ON CONFLICT (project, name) DO NOTHING",
               {"p": self.project, "name": name, "at": self.clock()})

    def _lock_environment(self, tx: Tx, name: str) -> None:
        """The environment's row, locked to the end of the transaction (created if missing):
        starting an activity on it is decided by one transaction at a time."""
        self._ensure_environment(tx, name)
        if not tx.is_sqlite:  # SQLite: BEGIN IMMEDIATE holds the whole file already
            tx.rows("SELECT name FROM environments WHERE project = :p AND name = :name "
                    "FOR UPDATE", {"p": self.project, "name": name})

    def _take_environment(self, tx: Tx, name: str, activity_id: str) -> bool:
        self._ensure_environment(tx, name)
        return tx.run("UPDATE environments SET running_activity = :id "
                      "WHERE project = :p AND name = :name AND running_activity IS NULL",
                      {"id": activity_id, "p": self.project, "name": name}) == 1

    def _live_activity(self, tx: Tx, environment: str) -> Activity | None:
        return sql.first(tx, Activity, sql.select(
            Activity, "WHERE project = :p AND environment = :env "
            "AND state IN ('pending', 'in_progress') ORDER BY state, created_at LIMIT 1"),
            {"p": self.project, "env": environment})  # in_progress first

    def _waiting_twin(self, tx: Tx, activity: Activity) -> Activity | None:
        return sql.first(tx, Activity, sql.select(
            Activity, "WHERE project = :p AND environment = :env AND state = 'pending' "
            "AND type = :type AND actor = :actor LIMIT 1"),
            {"p": self.project, "env": activity.environment, "type": activity.type,
             "actor": activity.actor})

    # -- while it runs -------------------------------------------------------------------

    def renew_lease(self, activity_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Extend the lease; False when ``worker_id`` no longer owns a running activity
        (it was reaped as interrupted): the worker must stop it."""
        with self._sql("write") as tx:
            until = self.clock() + timedelta(seconds=lease_seconds)
            return tx.run("UPDATE activities SET lease_expires_at = :until WHERE id = :id "
                          "AND project = :p AND worker = :worker AND state = 'in_progress'",
                          {"until": until, "id": activity_id, "p": self.project,
                           "worker": worker_id}) == 1

    def finish(self, activity_id: str, worker_id: str | None, *, state: str,
               result: str | None, **fields: Any) -> bool:
        """End a running activity (``state`` complete or cancelled) and free its environment,
        in one transaction. With ``worker_id``, only while that worker still owns it;
        False when it did not (it was reaped meanwhile), and nothing is changed."""
        with self._sql("queue") as tx:
            a = self._locked_activity(tx, activity_id)
            if a is None or a.state not in LIVE or (worker_id and a.worker != worker_id):
                return False
            values = {**fields, "state": state, "result": result,
                      "completed_at": fields.get("completed_at") or a.completed_at
                      or self.clock()}
            self._update_activity(tx, a.id, values)
            self._free_environment(tx, a.environment, a.id)
            return True

    def fail_interrupted(self, activity_id: str, error: str, *, log: str | None = None,
                         lease_expired_before: datetime | None = None) -> bool:
        """Mark a running activity whose runner is gone as failed, with ``log`` as its last
        log line, and free its environment, in one transaction. With
        ``lease_expired_before``, only if its lease still ends before that instant (a
        renewal that came in meanwhile wins). False when nothing was changed."""
        with self._sql("queue") as tx:
            a = self._locked_activity(tx, activity_id)
            if a is None or a.state != "in_progress":
                return False
            expiry = a.lease_expires_at
            if lease_expired_before is not None and (expiry is None
                                                     or expiry >= lease_expired_before):
                return False
            at = self.clock()
            self._update_activity(tx, a.id, {"state": "complete", "result": "failure",
                                             "completed_at": at, "error": error})
            if log:
                sql.add_log(tx, a.id, at, log)
            self._free_environment(tx, a.environment, a.id)
            return True

    def take_over(self, activity_id: str, worker: str | None, settler: str,
                  lease_seconds: float, *, expired_before: datetime | None = None) -> bool:
        """Make ``settler`` the owner of a running activity whose runner is gone (still
        owned by ``worker``; with ``expired_before``, only while its lease ends before
        that instant), with a fresh lease, so one process settles what it left. False
        when another process took it first, or its runner renewed meanwhile."""
        with self._sql("write") as tx:
            params: dict[str, Any] = {
                "settler": settler, "id": activity_id, "p": self.project,
                "until": self.clock() + timedelta(seconds=lease_seconds)}
            cond = "worker IS NULL"
            if worker is not None:
                cond, params["worker"] = "worker = :worker", worker
            if expired_before is not None:
                cond += " AND lease_expires_at < :before"
                params["before"] = expired_before
            return tx.run(f"UPDATE activities SET worker = :settler, lease_expires_at = :until "
                          f"WHERE id = :id AND project = :p AND state = 'in_progress' AND {cond}",
                          params) == 1

    def note_blocked(self, activity_id: str, reason: str) -> bool:
        """Say on a running activity (its ``error``, and its log when it changes) why its
        environment stays held until what its runner left is settled."""
        with self._sql("write") as tx:
            changed = tx.run("UPDATE activities SET error = :reason WHERE id = :id AND "
                             "project = :p AND state = 'in_progress' AND "
                             "(error IS NULL OR error <> :reason)",
                             {"reason": reason, "id": activity_id, "p": self.project}) == 1
            if changed:
                sql.add_log(tx, activity_id, self.clock(), f"Blocked: {reason}.")
            return changed

    def expired_leases(self, at: datetime | None = None) -> list[Activity]:
        """Running activities whose lease ended before ``at`` (default: now)."""
        with self._sql() as tx:
            return sql.load(tx, Activity, tx.rows(sql.select(
                Activity, "WHERE project = :p AND state = 'in_progress' "
                "AND lease_expires_at < :at ORDER BY lease_expires_at"),
                {"p": self.project, "at": at or self.clock()}))

    def running_activity(self, environment: str) -> str | None:
        """The ID of the activity that holds ``environment``, if any."""
        with self._sql() as tx:
            found = tx.rows("SELECT running_activity FROM environments WHERE project = :p "
                            "AND name = :name", {"p": self.project, "name": environment})
        return found[0][0] if found else None

    def _locked_activity(self, tx: Tx, activity_id: str) -> Activity | None:
        lock = "" if tx.is_sqlite else " FOR UPDATE"
        return sql.first(tx, Activity, sql.select(
            Activity, "WHERE id = :id AND project = :p" + lock),
            {"id": activity_id, "p": self.project})

    def _update_activity(self, tx: Tx, activity_id: str, values: dict[str, Any]) -> int:
        assign, params = sql.assignments(Activity, values)
        return tx.run(f"UPDATE activities SET {assign} WHERE id = :id AND project = :p",
                      {**params, "id": activity_id, "p": self.project})

    def _free_environment(self, tx: Tx, environment: str, activity_id: str) -> None:
        tx.run("UPDATE environments SET running_activity = NULL "
               "WHERE project = :p AND name = :name AND running_activity = :id",
               {"p": self.project, "name": environment, "id": activity_id})

    # -- cancelling ----------------------------------------------------------------------

    def request_cancel(self, activity_id: str, by: str, *, cancelled_log: str,
                       requested_log: str) -> Activity | None:
        """Cancel a pending activity at once (state cancelled, result failure, last log line
        ``cancelled_log``), or flag a running one (``cancel_requested``, logging
        ``requested_log``; its runner stops at its next safe point). Finished activities
        are left alone. Returns the activity as it now is, or None if it does not exist."""
        with self._sql("queue") as tx:
            a = self._locked_activity(tx, activity_id)
            if a is None:
                return None
            message = None
            values: dict[str, Any] = {}
            if a.state == "pending":
                values = {"state": "cancelled", "result": "failure",
                          "completed_at": self.clock(), "error": f"cancelled by {by}"}
                message = cancelled_log
            elif a.state == "in_progress" and not a.cancel_requested:
                values = {"cancel_requested": True,
                          "parameters": {**(a.parameters or {}), "cancelled_by": by}}
                message = requested_log
            if values:
                self._update_activity(tx, a.id, values)
                for k, v in values.items():
                    setattr(a, k, v)
            if message:
                sql.add_log(tx, a.id, self.clock(), message)
            return a

    def cancel_requested_by(self, activity_id: str) -> str | None:
        """Who asked to cancel this running activity, or None if nobody did."""
        with self._sql() as tx:
            found = tx.rows("SELECT cancel_requested, parameters FROM activities "
                            "WHERE id = :id AND project = :p",
                            {"id": activity_id, "p": self.project})
        if not found or not found[0][0]:
            return None
        parameters = sql.decode(tx, "parameters", found[0][1]) or {}
        return str(parameters.get("cancelled_by") or "someone")
