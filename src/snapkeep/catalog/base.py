"""What every part of the ``Catalog`` stands on: its sessions, its clock, adding a row.

``Catalog`` sets these up in ``__init__``; the mixins (queue, identity, schedules,
notifications) inherit them from here instead of each declaring what it expects.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from sqlalchemy import create_engine, event
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from snapkeep.catalog.models import Base
from snapkeep.catalog.times import Clock, utc

Row = TypeVar("Row", bound=Base)


_PROGRESS_LOCK = threading.Lock()  # one progress engine per catalog, made on first use


WAL_SWITCH_WAIT_S = 30.0  # as long as the busy timeout


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
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


def _progress_pragmas(dbapi_conn: Any, record: Any) -> None:
    sqlite_pragmas(dbapi_conn, record)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA synchronous=NORMAL")  # see CatalogBase._progress_session
    cur.close()


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (``Session.execute`` is typed as returning
    a plain ``Result``; for those statements it is a ``CursorResult``)."""
    return cast(CursorResult[Any], result).rowcount


class CatalogBase:
    is_sqlite: bool
    clock: Clock  # every time the catalog stamps a row with is read from it
    _sessions: sessionmaker[Session]
    _progress_sessions: sessionmaker[Session] | None = None  # made on first use (SQLite)
    engine: Engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s, s.begin():
            yield s

    @contextmanager
    def _progress_session(self) -> Iterator[Session]:
        """A transaction for a running activity's progress and log lines.

        On SQLite it commits without waiting for the disk: its connection runs with
        ``synchronous=NORMAL`` (every other one with SQLite's default, FULL). In WAL mode
        the next FULL commit syncs the log file, and with it these earlier commits: the
        activity's end (``finish``) makes them durable; a crash before it loses at most
        progress and log lines of an activity that recovery marks interrupted anyway. An
        unchanged re-snapshot makes about 6 such commits (each an ``fdatasync`` otherwise;
        docs/performance.md, Start-up). Elsewhere a plain ``session``.
        """
        if not self.is_sqlite:
            with self.session() as s:
                yield s
            return
        with _PROGRESS_LOCK:
            if self._progress_sessions is None:
                engine = create_engine(self.engine.url)
                event.listen(engine, "connect", _progress_pragmas)
                self._progress_sessions = sessionmaker(engine, expire_on_commit=False)
            sessions = self._progress_sessions
        with sessions() as s, s.begin():
            yield s

    @contextmanager
    def _queue_tx(self) -> Iterator[Session]:
        """A transaction for a queue decision: on SQLite it holds the write lock from its
        first statement (a deferred one could not upgrade once another writer went first)."""
        with self._sessions() as s, s.begin():
            if self.is_sqlite:
                s.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield s

    def _added(self, row: Row) -> Row:
        """``row`` inserted, returned detached with UTC times."""
        with self.session() as s:
            s.add(row)
        return utc(row)

    def _add_new(self, row: Base) -> bool:
        """Insert ``row``; False (and nothing changed) when its key exists already."""
        try:
            self._added(row)
        except IntegrityError:
            return False
        return True
