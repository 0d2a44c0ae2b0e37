"""Catalog access: one SQLite file in ``.snapkeep/``, or PostgreSQL for teams (#5).

Opening a catalog brings its schema to the newest Alembic revision (on PostgreSQL under
an advisory lock, so workers starting together migrate once). Several processes (a CLI,
a detached worker) use one SQLite file at once: WAL mode and a busy timeout make that
safe. Rows are returned detached, so callers may keep them after the session closes.
A ``Catalog`` is thread-safe: every method opens its own transaction on a pooled
connection. Activities, log lines, environments and snapshots go through
``catalog/sql.py`` (on SQLite the stdlib ``sqlite3``: a local snapshot loads no
SQLAlchemy); the rest through SQLAlchemy's ORM, loaded on first use (``base.py``).

One catalog database holds many projects (#19). A ``Catalog`` serves one of them,
``project`` (its config's ``[project] id``): every per-project row it adds carries that
id and every query of such rows filters by it, so two configs on one catalog never see,
block or delete each other's rows. ``for_project`` gives the same database's view of
another project (one connection pool for all; a server or worker of many projects).
Users, API tokens and console sessions are shared by every project; roles are per
project (``project_roles``, ``environment_roles``).
"""

from __future__ import annotations

import copy
import sqlite3
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from snapkeep.catalog import sql
from snapkeep.catalog.base import CatalogBase
from snapkeep.catalog.identity import IdentityMixin
from snapkeep.catalog.notifications import NotificationMixin
from snapkeep.catalog.queue import QueueMixin
from snapkeep.catalog.rows import Activity, ActivityLog, Snapshot
from snapkeep.catalog.schedules import ScheduleMixin
from snapkeep.catalog.times import Clock, SystemClock
from snapkeep.config import CATALOG_FILE, redact_url
from snapkeep.errors import ServiceUnavailable

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "0007"
DEFAULT_PROJECT = "default"  # a catalog opened outside any project (tests, tools)
MIGRATION_LOCK = 0x736E61706B656570  # pg_advisory_xact_lock key: "snapkeep"


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL for a catalog URL: PostgreSQL goes through psycopg 3."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


class Catalog(IdentityMixin, QueueMixin, ScheduleMixin, NotificationMixin, CatalogBase):
    def __init__(self, url: str, *, shown_as: str | None = None,
                 clock: Clock | None = None, project: str = DEFAULT_PROJECT) -> None:
        self.clock = clock or SystemClock()
        self.project = project
        self.description = redact_url(shown_as or url)  # never the password
        self._setup(url)
        try:
            if not self._current():
                self._migrate()
        except Exception as e:
            if not _unavailable(e):
                raise
            self.dispose()
            orig = getattr(e, "orig", None) or e
            reason = str(orig).strip().splitlines()[0] if str(orig).strip() \
                else type(orig).__name__
            raise ServiceUnavailable(
                f"cannot open the catalog {self.description}: {reason}; check that the "
                "database server is running and the `catalog` URL in snapkeep.toml (or "
                "SNAPKEEP_CATALOG) names it") from None

    def for_project(self, project: str) -> Catalog:
        """This catalog database as project ``project`` sees it (its connections shared)."""
        if project == self.project:
            return self
        other = copy.copy(self)
        other.project = project
        return other

    @classmethod
    def at(cls, state_dir: Path, clock: Clock | None = None,
           project: str = DEFAULT_PROJECT) -> Catalog:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / CATALOG_FILE
        # The catalog holds users' hashes and tokens: readable by the owner only.
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        return cls(f"sqlite:///{path}", clock=clock, project=project)

    @classmethod
    def from_url(cls, url: str, clock: Clock | None = None,
                 project: str = DEFAULT_PROJECT) -> Catalog:
        """A catalog at ``postgresql://user[:password]@host:port/db`` (or a sqlite URL).

        The password may also come from libpq's PGPASSWORD or ~/.pgpass.
        """
        return cls(sqlalchemy_url(url), shown_as=url, clock=clock, project=project)

    def _current(self) -> bool:
        """Whether a SQLite catalog's schema is at ``HEAD`` already (one read, no lock: a
        schema only moves forward); False sends every other case to ``_migrate``."""
        if not self.is_sqlite:
            return False
        try:
            with self._sql() as tx:
                found = tx.rows("SELECT version_num FROM alembic_version")
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return False
            raise
        return bool(found) and found[0][0] == HEAD

    def _migrate(self) -> None:
        from sqlalchemy import inspect, text

        with self.engine.begin() as conn:
            # Held to the end of this transaction: one process (or thread) migrates, the
            # others wait, then find the schema current.
            if self.is_sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            current = None
            if inspect(conn).has_table("alembic_version"):
                current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            if current == HEAD:
                return
            # Imported here: Alembic costs ~0.2 s of start-up, needed only when migrating.
            from alembic import command
            from alembic.config import Config as AlembicConfig

            cfg = AlembicConfig()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = conn
            # 0007 gives the rows of a one-project catalog to the project opening it
            cfg.attributes["project"] = self.project
            command.upgrade(cfg, "head")

    # -- environments ------------------------------------------------------------------------

    def environment_status(self, name: str) -> str:
        with self._sql() as tx:
            found = tx.rows("SELECT status FROM environments WHERE project = :p "
                            "AND name = :name", {"p": self.project, "name": name})
        return str(found[0][0]) if found else "active"

    def set_environment_status(self, name: str, status: str) -> None:
        with self._sql("write") as tx:
            tx.run("INSERT INTO environments (project, name, status, updated_at) "
                   "VALUES (:p, :name, :status, :at) ON CONFLICT (project, name) DO UPDATE "
                   "SET status = excluded.status, updated_at = excluded.updated_at",
                   {"p": self.project, "name": name, "status": status, "at": self.clock()})

    # -- activities --------------------------------------------------------------------------

    def add_activity(self, activity: Activity) -> Activity:
        activity.project = self.project
        with self._sql("write") as tx:
            sql.insert(tx, activity)
        return activity

    def update_activity(self, activity_id: str, **fields: Any) -> None:
        """Progress and facts of a running activity (its end is ``finish``): a progress
        commit, durable with the activity's next durable one."""
        if not fields:
            return
        with self._sql("progress") as tx:
            self._update_activity(tx, activity_id, fields)

    def get_activity(self, activity_id: str) -> Activity | None:
        with self._sql() as tx:
            return sql.first(tx, Activity, sql.select(
                Activity, "WHERE id = :id AND project = :p"),
                {"id": activity_id, "p": self.project})

    def list_activities(self, environment: str | None = None, *, states: Sequence[str] = (),
                        limit: int = 50, offset: int = 0,
                        types: Sequence[str] = ()) -> list[Activity]:
        where = ["project = :p"]
        params: dict[str, Any] = {"limit": limit, "offset": offset, "p": self.project}
        if environment is not None:
            where.append("environment = :env")
            params["env"] = environment
        for column, values in (("state", states), ("type", types)):
            if values:
                names, more = sql.in_list(column, list(values))
                where.append(f"{column} IN {names}")
                params.update(more)
        q = sql.select(Activity, "WHERE " + " AND ".join(where)
                       + " ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset")
        with self._sql() as tx:
            return sql.load(tx, Activity, tx.rows(q, params))

    def append_log(self, activity_id: str, message: str) -> None:
        """A log line (a progress commit: durable with the activity's next durable one)."""
        with self._sql("progress") as tx:
            sql.add_log(tx, activity_id, self.clock(), message)

    def log_lines(self, activity_id: str, after_id: int = 0) -> list[ActivityLog]:
        with self._sql() as tx:
            return sql.load(tx, ActivityLog, tx.rows(sql.select(
                ActivityLog, "WHERE activity_id = :a AND id > :after AND EXISTS (SELECT 1 "
                "FROM activities WHERE id = :a AND project = :p) ORDER BY id"),
                {"a": activity_id, "after": after_id, "p": self.project}))

    # -- snapshots ---------------------------------------------------------------------------

    def put_snapshot(self, snap: Snapshot) -> None:
        """Insert, or replace the row with the same ID (of this project)."""
        snap.project = self.project
        names = sql.COLUMNS[Snapshot]
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n not in ("id", "project"))
        with self._sql("write") as tx:
            tx.run(f"INSERT INTO snapshots ({', '.join(names)}) "
                   f"VALUES ({', '.join(':' + n for n in names)}) "
                   f"ON CONFLICT (project, id) DO UPDATE SET {updates}",
                   {n: getattr(snap, n) for n in names})

    def get_snapshot(self, snapshot_id: str) -> Snapshot | None:
        with self._sql() as tx:
            return sql.first(tx, Snapshot, sql.select(
                Snapshot, "WHERE project = :p AND id = :id"),
                {"p": self.project, "id": snapshot_id})

    def list_snapshots(self, environment: str | None = None, *, limit: int | None = None,
                       offset: int = 0) -> list[Snapshot]:
        where, params = "WHERE project = :p", dict[str, Any](p=self.project)
        if environment is not None:
            where += " AND environment = :env"
            params["env"] = environment
        where += " ORDER BY created_at DESC, id DESC"
        if limit is not None or offset:
            # SQLite needs a LIMIT before an OFFSET; -1 is none there, NULL on PostgreSQL
            where += " LIMIT :limit OFFSET :offset"
            params.update(limit=limit if limit is not None else (-1 if self.is_sqlite
                                                                  else None),
                          offset=offset)
        with self._sql() as tx:
            return sql.load(tx, Snapshot, tx.rows(sql.select(Snapshot, where), params))

    def record_drill(self, snapshot_id: str, ok: bool | None, at: datetime) -> None:
        """A restore drill's outcome: ``verified_ok`` becomes ``ok``; a pass also moves
        ``verified_at`` to ``at`` (it stays the time of the last drill that passed)."""
        values: dict[str, Any] = {"verified_ok": ok, **({"verified_at": at} if ok else {})}
        assign, params = sql.assignments(Snapshot, values)
        with self._sql("write") as tx:
            tx.run(f"UPDATE snapshots SET {assign} WHERE project = :p AND id = :id",
                   {**params, "p": self.project, "id": snapshot_id})

    def delete_snapshot(self, snapshot_id: str) -> None:
        with self._sql("write") as tx:
            tx.run("DELETE FROM snapshots WHERE project = :p AND id = :id",
                   {"p": self.project, "id": snapshot_id})

    def snapshot_ids(self) -> set[str]:
        with self._sql() as tx:
            return {r[0] for r in tx.rows("SELECT id FROM snapshots WHERE project = :p",
                                          {"p": self.project})}

    # -- statistics (GET /metrics): aggregated here, so a scrape reads a few rows ----------

    def snapshot_totals(self) -> list[tuple[str, int, int, int]]:
        """(environment, snapshots, their size_bytes, their added_bytes) per environment."""
        with self._sql() as tx:
            rows = tx.rows("SELECT environment, COUNT(*), SUM(size_bytes), SUM(added_bytes) "
                           "FROM snapshots WHERE project = :p GROUP BY environment",
                           {"p": self.project})
        return [(env, int(n), int(size or 0), int(added or 0)) for env, n, size, added in rows]

    def activity_counts(self) -> list[tuple[str, str, str, str | None, int]]:
        """(environment, type, state, result, how many) over every activity."""
        with self._sql() as tx:
            rows = tx.rows("SELECT environment, type, state, result, COUNT(*) FROM activities "
                           "WHERE project = :p GROUP BY environment, type, state, result",
                           {"p": self.project})
        return [(env, type_, state, result, int(n)) for env, type_, state, result, n in rows]

    def activity_durations(self) -> list[tuple[str, str, int, float]]:
        """(environment, type, ended activities that had started, sum of their run times in
        seconds), from started_at to completed_at."""
        seconds = ("(julianday(completed_at) - julianday(started_at)) * 86400.0"
                   if self.is_sqlite else "EXTRACT(EPOCH FROM completed_at - started_at)")
        with self._sql() as tx:
            rows = tx.rows(f"SELECT environment, type, COUNT(*), SUM({seconds}) FROM activities "
                           "WHERE project = :p AND state IN ('complete', 'cancelled') "
                           "AND started_at IS NOT NULL AND completed_at IS NOT NULL "
                           "GROUP BY environment, type", {"p": self.project})
        return [(env, type_, int(n), max(0.0, float(total or 0)))
                for env, type_, n, total in rows]

    def last_successes(self) -> list[tuple[str, str, datetime]]:
        """(environment, type, when its last successful activity of that type ended)."""
        with self._sql() as tx:
            rows = tx.rows("SELECT environment, type, MAX(completed_at) FROM activities "
                           "WHERE project = :p AND state = 'complete' AND result = 'success' "
                           "GROUP BY environment, type", {"p": self.project})
            return [(env, type_, sql.decode(tx, "completed_at", at))
                    for env, type_, at in rows if at is not None]


def _unavailable(e: Exception) -> bool:
    """Whether opening failed because the database could not be reached or read."""
    if isinstance(e, sqlite3.OperationalError):
        return True
    exc = sys.modules.get("sqlalchemy.exc")  # loaded already when it can be one
    return exc is not None and isinstance(e, exc.OperationalError)
