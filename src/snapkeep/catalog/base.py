"""What every part of the ``Catalog`` stands on: its transactions, its clock, adding a row.

Two ways in, one database: ``_sql`` transactions run the statements of ``catalog/sql.py``
(activities, log lines, environments, snapshots) — on SQLite with the stdlib ``sqlite3``,
on PostgreSQL through SQLAlchemy; ``session`` is an ORM session for the rest (users,
tokens, schedules, the webhook outbox). SQLAlchemy is imported, and its engine made, on
the first ORM session (or PostgreSQL transaction): a local snapshot never loads it.
``Catalog`` sets these up in ``__init__``; the mixins (queue, identity, schedules,
notifications) inherit them from here instead of each declaring what it expects.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from snapkeep.catalog.sql import AlchemyTx, SqlitePool, Tx
from snapkeep.catalog.times import utc

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine, Result
    from sqlalchemy.orm import Session, sessionmaker

    from snapkeep.catalog.models import Base

Row = TypeVar("Row", bound="Base")


WAL_SWITCH_WAIT_S = 30.0  # as long as the busy timeout


def sqlite_pragmas(dbapi_conn: Any, _record: Any = None) -> None:
    """Every SQLite catalog connection: a wait for the write lock, WAL, foreign keys."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    _switch_to_wal(cur)
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _switch_to_wal(cur: Any) -> None:
    """``PRAGMA journal_mode=WAL``, retried while the file is busy.

    On a new file several openers at once each hold a shared lock and want an exclusive
    one; SQLite fails all but one at once with "database is locked" instead of calling the
    busy handler (which could deadlock them). Once the file is in WAL mode the pragma is a
    read and never waits.
    """
    deadline = time.monotonic() + WAL_SWITCH_WAIT_S
    pause = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _progress_pragmas(conn: sqlite3.Connection) -> None:
    sqlite_pragmas(conn)
    conn.execute("PRAGMA synchronous=NORMAL")  # see CatalogBase._sql, "progress"


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (``Session.execute`` is typed as returning
    a plain ``Result``; for those statements it is a ``CursorResult``)."""
    return int(cast(Any, result).rowcount)


TxKind = Literal["read", "write", "queue", "progress"]


class Connections:
    """The ways into one catalog database, shared by a ``Catalog`` and its project views
    (``Catalog.for_project``): one pool per database, however many projects it serves."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.lock = threading.Lock()
        self.pool: SqlitePool | None = None  # SQLite: sqlite3 connections, synchronous=FULL
        self.progress_pool: SqlitePool | None = None  # SQLite: synchronous=NORMAL (progress)
        self.engine: Engine | None = None
        self.sessions: sessionmaker[Session] | None = None
        if self.is_sqlite:
            path = url.split("///", 1)[1]
            self.pool = SqlitePool(path, sqlite_pragmas)
            self.progress_pool = SqlitePool(path, _progress_pragmas)


class CatalogBase:
    is_sqlite: bool
    clock: Any  # a times.Clock: every time the catalog stamps a row with is read from it
    url: str  # the SQLAlchemy URL
    # The project whose rows this catalog reads and writes (``[project] id``): every
    # per-project row carries it, every query of such rows filters by it.
    project: str
    _conn: Connections

    def _setup(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._conn = Connections(url)

    @property
    def _pool(self) -> SqlitePool | None:
        return self._conn.pool

    @property
    def _progress_pool(self) -> SqlitePool | None:
        return self._conn.progress_pool

    @property
    def _engine(self) -> Engine | None:
        return self._conn.engine

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, made on first use."""
        conn = self._conn
        with conn.lock:
            if conn.engine is None:
                from sqlalchemy import create_engine, event
                from sqlalchemy.orm import sessionmaker

                # pool_pre_ping: a worker outlives server restarts and idle-connection reapers
                engine = create_engine(self.url, pool_pre_ping=not self.is_sqlite)
                if self.is_sqlite:
                    event.listen(engine, "connect", sqlite_pragmas)
                conn.sessions = sessionmaker(engine, expire_on_commit=False)
                conn.engine = engine
            return conn.engine

    def dispose(self) -> None:
        """Close every idle connection (both ways in)."""
        for pool in (self._pool, self._progress_pool):
            if pool is not None:
                pool.close()
        if self._engine is not None:
            self._engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM session in a transaction (the tables outside ``catalog/sql.py``)."""
        self.engine  # noqa: B018 - makes the sessionmaker
        assert self._conn.sessions is not None
        with self._conn.sessions() as s, s.begin():
            yield s

    @contextmanager
    def _sql(self, kind: TxKind = "read") -> Iterator[Tx]:
        """A transaction for ``catalog/sql.py``'s statements.

        ``queue``: a queue decision; on SQLite it holds the write lock from its first
        statement (``BEGIN IMMEDIATE``: a deferred one could not upgrade once another
        writer went first); on PostgreSQL the statements lock their rows (``FOR UPDATE``).

        ``progress``: a running activity's progress and log lines. On SQLite it commits
        without waiting for the disk: its connection runs with ``synchronous=NORMAL``
        (every other one with SQLite's default, FULL). In WAL mode the next FULL commit
        syncs the log file, and with it these earlier commits: the activity's end
        (``finish``) makes them durable; a crash before it loses at most progress and log
        lines of an activity that recovery marks interrupted anyway. An unchanged
        re-snapshot makes about 6 such commits (each an ``fdatasync`` otherwise;
        docs/performance.md, Start-up). Elsewhere a plain transaction.
        """
        if self.is_sqlite:
            pool = self._progress_pool if kind == "progress" else self._pool
            assert pool is not None
            with pool.tx(immediate=kind == "queue") as tx:
                yield tx
            return
        with self.engine.begin() as conn:
            yield AlchemyTx(conn)

    def _added(self, row: Row) -> Row:
        """``row`` inserted, returned detached with UTC times."""
        with self.session() as s:
            s.add(row)
        return utc(row)

    def _add_new(self, row: Base) -> bool:
        """Insert ``row``; False (and nothing changed) when its key exists already."""
        from sqlalchemy.exc import IntegrityError

        try:
            self._added(row)
        except IntegrityError:
            return False
        return True
