"""Catalog access: one SQLite file in ``.snapkeep/``, or PostgreSQL for teams (#5).

Opening a catalog brings its schema to the newest Alembic revision (on PostgreSQL under
an advisory lock, so workers starting together migrate once). Several processes (a CLI,
a detached worker) use one SQLite file at once: WAL mode and a busy timeout make that
safe. Rows are returned detached, so callers may keep them after the session closes.
A ``Catalog`` is thread-safe: every method opens its own session from the engine's pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, delete, event, func, inspect, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from snapkeep.catalog.base import CatalogBase, sqlite_pragmas
from snapkeep.catalog.identity import IdentityMixin
from snapkeep.catalog.models import Activity, ActivityLog, EnvironmentState, Snapshot
from snapkeep.catalog.notifications import NotificationMixin
from snapkeep.catalog.queue import QueueMixin
from snapkeep.catalog.schedules import ScheduleMixin
from snapkeep.catalog.times import Clock, SystemClock, aware, utc
from snapkeep.config import CATALOG_FILE, redact_url
from snapkeep.errors import ServiceUnavailable

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "0006"
MIGRATION_LOCK = 0x736E61706B656570  # pg_advisory_xact_lock key: "snapkeep"


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL for a catalog URL: PostgreSQL goes through psycopg 3."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


class Catalog(IdentityMixin, QueueMixin, ScheduleMixin, NotificationMixin, CatalogBase):
    def __init__(self, url: str, *, shown_as: str | None = None,
                 clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self.description = redact_url(shown_as or url)  # never the password
        self.is_sqlite = url.startswith("sqlite")
        # pool_pre_ping: a worker outlives server restarts and idle-connection reapers.
        self.engine = create_engine(url, pool_pre_ping=not self.is_sqlite)
        if self.is_sqlite:
            event.listen(self.engine, "connect", sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            self._migrate()
        except OperationalError as e:
            self.engine.dispose()
            reason = str(e.orig).strip().splitlines()[0] if e.orig else type(e).__name__
            raise ServiceUnavailable(
                f"cannot open the catalog {self.description}: {reason}; check that the "
                "database server is running and the `catalog` URL in snapkeep.toml (or "
                "SNAPKEEP_CATALOG) names it") from None

    @classmethod
    def at(cls, state_dir: Path, clock: Clock | None = None) -> Catalog:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / CATALOG_FILE
        # The catalog holds users' hashes and tokens: readable by the owner only.
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        return cls(f"sqlite:///{path}", clock=clock)

    @classmethod
    def from_url(cls, url: str, clock: Clock | None = None) -> Catalog:
        """A catalog at ``postgresql://user[:password]@host:port/db`` (or a sqlite URL).

        The password may also come from libpq's PGPASSWORD or ~/.pgpass.
        """
        return cls(sqlalchemy_url(url), shown_as=url, clock=clock)

    def _migrate(self) -> None:
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
            command.upgrade(cfg, "head")

    # -- environments ------------------------------------------------------------------------

    def environment_status(self, name: str) -> str:
        with self.session() as s:
            row = s.get(EnvironmentState, name)
            return row.status if row else "active"

    def set_environment_status(self, name: str, status: str) -> None:
        with self.session() as s:
            row = s.get(EnvironmentState, name)
            if row is None:
                s.add(EnvironmentState(name=name, status=status, updated_at=self.clock()))
            else:
                row.status, row.updated_at = status, self.clock()

    # -- activities --------------------------------------------------------------------------

    def add_activity(self, activity: Activity) -> Activity:
        with self.session() as s:
            s.add(activity)
        return activity

    def update_activity(self, activity_id: str, **fields: Any) -> None:
        """Progress and facts of a running activity (its end is ``finish``): a progress
        commit, durable with the activity's next durable one."""
        with self._progress_session() as s:
            row = s.get(Activity, activity_id)
            if row is not None:
                for k, v in fields.items():
                    setattr(row, k, v)

    def get_activity(self, activity_id: str) -> Activity | None:
        with self.session() as s:
            return utc(s.get(Activity, activity_id))

    def list_activities(self, environment: str | None = None, *, states: Sequence[str] = (),
                        limit: int = 50, offset: int = 0,
                        types: Sequence[str] = ()) -> list[Activity]:
        q = (select(Activity).order_by(Activity.created_at.desc(), Activity.id.desc())
             .limit(limit).offset(offset))
        if environment is not None:
            q = q.where(Activity.environment == environment)
        if states:
            q = q.where(Activity.state.in_(states))
        if types:
            q = q.where(Activity.type.in_(types))
        with self.session() as s:
            return [utc(a) for a in s.scalars(q)]

    def append_log(self, activity_id: str, message: str) -> None:
        """A log line (a progress commit: durable with the activity's next durable one)."""
        with self._progress_session() as s:
            s.add(ActivityLog(activity_id=activity_id, at=self.clock(), message=message))

    def log_lines(self, activity_id: str, after_id: int = 0) -> list[ActivityLog]:
        q = (select(ActivityLog).where(ActivityLog.activity_id == activity_id,
                                       ActivityLog.id > after_id).order_by(ActivityLog.id))
        with self.session() as s:
            rows = list(s.scalars(q))
        for r in rows:
            r.at = aware(r.at)
        return rows

    # -- snapshots ---------------------------------------------------------------------------

    def put_snapshot(self, snap: Snapshot) -> None:
        with self.session() as s:
            s.merge(snap)

    def get_snapshot(self, snapshot_id: str) -> Snapshot | None:
        with self.session() as s:
            return utc(s.get(Snapshot, snapshot_id))

    def list_snapshots(self, environment: str | None = None, *, limit: int | None = None,
                       offset: int = 0) -> list[Snapshot]:
        q = (select(Snapshot).order_by(Snapshot.created_at.desc(), Snapshot.id.desc())
             .limit(limit).offset(offset))
        if environment is not None:
            q = q.where(Snapshot.environment == environment)
        with self.session() as s:
            return [utc(x) for x in s.scalars(q)]

    def record_drill(self, snapshot_id: str, ok: bool | None, at: datetime) -> None:
        """A restore drill's outcome: ``verified_ok`` becomes ``ok``; a pass also moves
        ``verified_at`` to ``at`` (it stays the time of the last drill that passed)."""
        with self.session() as s:
            row = s.get(Snapshot, snapshot_id)
            if row is not None:
                row.verified_ok = ok
                if ok:
                    row.verified_at = at

    def delete_snapshot(self, snapshot_id: str) -> None:
        with self.session() as s:
            s.execute(delete(Snapshot).where(Snapshot.id == snapshot_id))

    def snapshot_ids(self) -> set[str]:
        with self.session() as s:
            return set(s.scalars(select(Snapshot.id)))

    # -- statistics (GET /metrics): aggregated here, so a scrape reads a few rows ----------

    def snapshot_totals(self) -> list[tuple[str, int, int, int]]:
        """(environment, snapshots, their size_bytes, their added_bytes) per environment."""
        q = (select(Snapshot.environment, func.count(), func.sum(Snapshot.size_bytes),
                    func.sum(Snapshot.added_bytes)).group_by(Snapshot.environment))
        with self.session() as s:
            return [(env, int(n), int(size or 0), int(added or 0))
                    for env, n, size, added in s.execute(q)]

    def activity_counts(self) -> list[tuple[str, str, str, str | None, int]]:
        """(environment, type, state, result, how many) over every activity."""
        q = (select(Activity.environment, Activity.type, Activity.state, Activity.result,
                    func.count())
             .group_by(Activity.environment, Activity.type, Activity.state, Activity.result))
        with self.session() as s:
            return [(env, type_, state, result, int(n))
                    for env, type_, state, result, n in s.execute(q)]

    def activity_durations(self) -> list[tuple[str, str, int, float]]:
        """(environment, type, ended activities that had started, sum of their run times in
        seconds), from started_at to completed_at."""
        if self.is_sqlite:
            seconds = (func.julianday(Activity.completed_at)
                       - func.julianday(Activity.started_at)) * 86400.0
        else:
            seconds = func.extract("epoch", Activity.completed_at - Activity.started_at)
        q = (select(Activity.environment, Activity.type, func.count(), func.sum(seconds))
             .where(Activity.state.in_(("complete", "cancelled")),
                    Activity.started_at.is_not(None), Activity.completed_at.is_not(None))
             .group_by(Activity.environment, Activity.type))
        with self.session() as s:
            return [(env, type_, int(n), max(0.0, float(total or 0)))
                    for env, type_, n, total in s.execute(q)]

    def last_successes(self) -> list[tuple[str, str, datetime]]:
        """(environment, type, when its last successful activity of that type ended)."""
        q = (select(Activity.environment, Activity.type, func.max(Activity.completed_at))
             .where(Activity.state == "complete", Activity.result == "success")
             .group_by(Activity.environment, Activity.type))
        with self.session() as s:
            return [(env, type_, aware(at)) for env, type_, at in s.execute(q) if at is not None]




