"""One SQL text per statement for activities, their log lines, environments and snapshots,
run by the stdlib ``sqlite3`` on a SQLite catalog and through SQLAlchemy on PostgreSQL.

Why not the ORM here: importing SQLAlchemy costs ~0.17 s, a third of an unchanged
re-snapshot (docs/performance.md). The statements are written once, with ``:name``
parameters both drivers take, so the two databases run the same queue logic; what
differs is said where it differs (``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
SQLite). Values are stored as SQLAlchemy's SQLite dialect stores them (times as
``YYYY-MM-DD HH:MM:SS.ffffff`` UTC text, JSON as ``json.dumps`` text, booleans as 0/1), so
the ORM-mapped rest of the catalog and older catalogs read them alike.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from snapkeep.catalog.rows import Activity, ActivityLog, Snapshot
from snapkeep.catalog.times import aware

R = TypeVar("R", Activity, ActivityLog, Snapshot)

TABLES: dict[type, str] = {Activity: "activities", ActivityLog: "activity_log",
                           Snapshot: "snapshots"}
COLUMNS: dict[type, tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls))
                                        for cls in TABLES}
TIMES = frozenset({"created_at", "started_at", "completed_at", "lease_expires_at", "at",
                   "expires_at", "verified_at", "updated_at"})
JSONS = frozenset({"parameters", "warnings"})
BOOLS = frozenset({"cancel_requested", "live", "automated", "verified_ok"})


class Tx(Protocol):
    """A transaction: ``rows`` of a SELECT, ``run`` a statement and get its row count."""

    is_sqlite: bool

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        ...

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> int: ...


def sqlite_time(dt: datetime) -> str:
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return f"{dt:%Y-%m-%d %H:%M:%S}.{dt.microsecond:06d}"


def _sqlite_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return sqlite_time(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return v


class SqliteTx:
    is_sqlite = True

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, _sqlite_params(params)).fetchall()

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        return self.conn.execute(sql, _sqlite_params(params)).rowcount


def _sqlite_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: _sqlite_value(v) for k, v in (params or {}).items()}


class SqlitePool:
    """sqlite3 connections to one catalog file, kept for reuse (a ``Catalog`` is shared by
    threads; each transaction takes a connection of its own). ``prepare`` sets a new
    connection up (pragmas)."""

    def __init__(self, path: str, prepare: Callable[[sqlite3.Connection], None]) -> None:
        self.path, self.prepare = path, prepare
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @contextmanager
    def tx(self, *, immediate: bool) -> Iterator[SqliteTx]:
        """A transaction; ``immediate`` takes the write lock at once (a deferred one could
        not upgrade once another writer went first)."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            try:
                self.prepare(conn)
            except BaseException:
                conn.close()
                raise
        try:
            conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield SqliteTx(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()  # its state is unknown: not reused
            raise
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class AlchemyTx:
    """The same statements on a SQLAlchemy connection (PostgreSQL, psycopg 3)."""

    is_sqlite = False

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._execute(sql, params)]

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        return int(self._execute(sql, params).rowcount)

    def _execute(self, sql: str, params: Mapping[str, Any] | None) -> Any:
        from psycopg.types.json import Json
        from sqlalchemy import text

        values = {k: Json(v) if isinstance(v, (dict, list)) else v
                  for k, v in (params or {}).items()}
        return self.conn.execute(text(sql), values)


def decode(tx: Tx, name: str, value: Any) -> Any:
    """A column's value as read (``name`` says its kind) in the row classes' terms."""
    if value is None:
        return None
    if name in TIMES:
        return aware(datetime.fromisoformat(value) if isinstance(value, str) else value)
    if name in JSONS:
        return json.loads(value) if isinstance(value, str) else value
    if name in BOOLS:
        return bool(value)
    return value


def columns(cls: type, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + c for c in COLUMNS[cls])


def select(cls: type[R], where: str = "", alias: str = "") -> str:
    """``SELECT <every column of cls> FROM <its table> [alias] [where]``."""
    table = TABLES[cls] + (f" {alias}" if alias else "")
    return f"SELECT {columns(cls, alias)} FROM {table} {where}".rstrip()


def load(tx: Tx, cls: type[R], rows: list[tuple[Any, ...]]) -> list[R]:
    names = COLUMNS[cls]
    return [cls(**{n: decode(tx, n, v) for n, v in zip(names, row, strict=True)})
            for row in rows]


def first(tx: Tx, cls: type[R], sql: str, params: Mapping[str, Any] | None = None) -> R | None:
    found = load(tx, cls, tx.rows(sql, params))
    return found[0] if found else None


def insert(tx: Tx, row: Activity | Snapshot) -> None:
    names = COLUMNS[type(row)]
    if getattr(row, "created_at", None) is None:
        raise ValueError(f"a {type(row).__name__} row needs created_at before it is inserted")
    tx.run(f"INSERT INTO {TABLES[type(row)]} ({', '.join(names)}) "
           f"VALUES ({', '.join(':' + n for n in names)})",
           {n: getattr(row, n) for n in names})


def add_log(tx: Tx, activity_id: str, at: datetime, message: str) -> None:
    tx.run("INSERT INTO activity_log (activity_id, at, message) VALUES (:a, :at, :m)",
           {"a": activity_id, "at": at, "m": message})


def assignments(cls: type, values: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``SET`` clause and parameters for ``values`` (column names checked: they come from
    callers' keyword arguments)."""
    unknown = sorted(set(values) - set(COLUMNS[cls]))
    if unknown:
        raise TypeError(f"{TABLES[cls]} has no column {', '.join(unknown)}")
    return (", ".join(f"{k} = :v_{k}" for k in values),
            {f"v_{k}": v for k, v in values.items()})


def in_list(prefix: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """``(:p0, :p1, …)`` and its parameters; an empty list matches nothing."""
    if not values:
        return "(NULL)", {}
    names = [f"{prefix}{i}" for i in range(len(values))]
    return "(" + ", ".join(":" + n for n in names) + ")", dict(zip(names, values, strict=True))
