"""System-versioned tables: every row version in the snapshot, with its exact period.

A MariaDB table ``WITH SYSTEM VERSIONING`` (``TABLE_TYPE`` ``SYSTEM VERSIONED``) keeps the
rows it had at every point in time. Its period is either two explicit columns (``s
TIMESTAMP(6) GENERATED ALWAYS AS ROW START``, named in ``PERIOD FOR SYSTEM_TIME (s, e)``
of its DDL) or the hidden pseudo-columns ``ROW_START``/``ROW_END``. The server lists the
explicit ones as generated columns, so the dump's usual column list would leave them out.

Dump: the rows are read ``FOR SYSTEM_TIME ALL`` (current and history rows, also from
``PARTITION BY SYSTEM_TIME`` history partitions) with the two period columns named last
in the SELECT; the description's table gets ``"system_time": {"start", "end",
"history": true}`` and the two columns the codec ``period`` (their text form, as
``plain``), which a snapkeep that predates this module refuses to load (unknown codec)
rather than load the history as current rows.

Restore: the loading sessions set ``system_versioning_insert_history = 1`` (MariaDB
10.11.0+), under which ``LOAD DATA``/``INSERT`` write the given period values. The
server refuses them (``secure_timestamp = YES``) or ignores them (a warning, not an
error, in the load's non-strict mode) when ``secure_timestamp`` forbids setting
timestamps (``REPLICATION``; ``SUPER`` without that privilege), so before loading, a
probe table in the shadow database checks that a written period is kept; otherwise the
restore is refused, naming the tables. An older server (no such variable) is refused
the same way: it cannot hold the history.

Transaction-precise tables (``BIGINT UNSIGNED GENERATED ALWAYS AS ROW START``): the
server never writes a given transaction id back (error 1906 even under
``system_versioning_insert_history``), so only their current rows are dumped (their
period columns are set by the server when loaded) and the snapshot says so with a
``warning:`` line naming the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pymysql

from snapkeep.engines.mysql.connect import Connection, error_code, query, query_text, quote_ident
from snapkeep.errors import PermissionDenied, ServiceUnavailable

TYPE = "SYSTEM VERSIONED"
IMPLICIT_START, IMPLICIT_END = "ROW_START", "ROW_END"
HISTORY_SESSION = "SET SESSION system_versioning_insert_history = 1"
# The keys of a versioned table are added after its rows by ALTER TABLE, which the server
# refuses on a system-versioned table unless told to keep its history as it is.
ALTER_SESSION = "SET SESSION system_versioning_alter_history = KEEP"
ER_UNKNOWN_SYSTEM_VARIABLE = 1193
ER_OPTION_PREVENTS_STATEMENT = 1290
ER_WARN_VALUE_IGNORED = 1906  # "The value specified for generated column … has been ignored"
_PERIOD = re.compile(r"^\s*PERIOD FOR SYSTEM_TIME \(`((?:[^`]|``)+)`, ?`((?:[^`]|``)+)`\)",
                     re.MULTILINE)


@dataclass(frozen=True)
class SystemTime:
    """A versioned table's period columns and whether its history can be dumped."""

    start: str
    end: str
    history: bool  # False: versioned by transaction id (current rows only)

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "history": self.history}


def system_time(ddl: str, column_types: dict[str, str]) -> SystemTime:
    """The period of a versioned table from its ``SHOW CREATE TABLE`` and its columns'
    ``DATA_TYPE`` (by name): explicit columns, or the implicit ``ROW_START``/``ROW_END``."""
    m = _PERIOD.search(ddl)
    if m is None:
        return SystemTime(IMPLICIT_START, IMPLICIT_END, True)
    start, end = (g.replace("``", "`") for g in m.groups())
    by_transaction = column_types.get(start, "").lower() == "bigint"
    return SystemTime(start, end, not by_transaction)


def read(conn: Connection, db: str, name: str, ddl: str) -> SystemTime:
    types = {str(c): str(t) for c, t in query_text(
        conn, "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
              "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (db, name))}
    return system_time(ddl, types)


def transaction_warning(name: str) -> str:
    return (f"warning: table {quote_ident(name)} is system-versioned by transaction id: "
            f"MariaDB cannot write transaction ids back, so its history rows are not part of "
            f"the snapshot and a restore gives its current rows new transaction ids")


def with_history(tables: list[dict[str, Any]]) -> list[str]:
    """The tables of a description whose history rows are to be loaded."""
    return [t["name"] for t in tables
            if (t.get("system_time") or {}).get("history") and t.get("columns")]


def require_history_insert(conn: Connection, tables: list[str]) -> None:
    """Make ``conn``'s session write given period values (``HISTORY_SESSION``) and prove it
    on a probe table in its current database; raise naming ``tables`` when it cannot."""
    (server_version,) = query_text(conn, "SELECT VERSION()")[0]
    names = ", ".join(quote_ident(t) for t in tables[:5]) + (" …" if len(tables) > 5 else "")
    what = (f"the snapshot's system-versioned table(s) {names} hold history rows with "
            f"their exact ROW_START/ROW_END")
    try:
        query(conn, HISTORY_SESSION)
    except pymysql.MySQLError as e:
        if error_code(e) != ER_UNKNOWN_SYSTEM_VARIABLE:
            raise
        raise ServiceUnavailable(
            f"{what}; writing them needs MariaDB 10.11 or later (system_versioning_insert_"
            f"history), this server is {server_version}: restore onto a MariaDB 10.11+ "
            f"server") from e
    probe = "snapkeep history probe"
    while probe in tables:
        probe += "_"
    q = quote_ident(probe)
    query(conn, f"CREATE TABLE {q} (a INT) WITH SYSTEM VERSIONING")
    try:
        try:
            query(conn, f"INSERT INTO {q} (a, ROW_START, ROW_END) "
                        f"VALUES (1, '2001-01-01 00:00:00', '2001-01-02 00:00:00')")
            kept = query(conn, f"SELECT COUNT(*) FROM {q} FOR SYSTEM_TIME ALL "
                               f"WHERE ROW_END = '2001-01-02 00:00:00'")[0][0]
        except pymysql.MySQLError as e:
            # ignored (an error in strict mode), or refused outright (secure_timestamp = YES)
            if error_code(e) not in (ER_WARN_VALUE_IGNORED, ER_OPTION_PREVENTS_STATEMENT):
                raise
            kept = 0
    finally:
        query(conn, f"DROP TABLE {q}")
    if not int(kept):
        (secure,) = query_text(conn, "SELECT @@GLOBAL.secure_timestamp")[0]
        raise PermissionDenied(
            f"{what}, but this server ignores given period values (secure_timestamp = "
            f"{secure}): restoring them needs secure_timestamp = NO, or SUPER for the "
            f"restoring user with secure_timestamp = SUPER")
