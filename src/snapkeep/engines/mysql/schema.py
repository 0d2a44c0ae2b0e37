"""Capturing a database's schema objects exactly (``SHOW CREATE …``, kept verbatim).

Every function takes an open connection whose default database is the one described,
so the server prints references to its own objects unqualified and the DDL can be
replayed into a database of another name. Results must be in utf8mb4
(``character_set_results``); values may arrive as bytes (raw connection) or str.

**Which tables are in a snapshot** — decided here, once, for every kind the server lists
(``information_schema.TABLES``); nothing is left out without a ``warning:`` line on the
activity naming it:

- ``TABLE_TYPE`` ``BASE TABLE`` and ``SYSTEM VERSIONED`` (``ROW_TABLE_TYPES``): DDL and
  rows. A system-versioned table keeps its history rows and exact period values
  (``versioning.py``), except one versioned by transaction id: its current rows only,
  with a warning (MariaDB cannot write transaction ids back).
- ``VIEW`` and ``SEQUENCE``: their definitions (and a sequence's next value).
- ``TEMPORARY``: a temporary table belongs to the session that made it and ends with it;
  the dump's own sessions cannot see another session's, so none is ever listed here.
- any other ``TABLE_TYPE`` (none on MariaDB 10.11 for a user database): not in the
  snapshot, with a warning naming it.

By engine (``rows_of``), for tables that hold rows: InnoDB, MyISAM, Aria, MEMORY, CSV,
ARCHIVE and the other local engines in ``LOCAL_ENGINES`` are dumped whole. FEDERATED,
CONNECT and SPIDER tables hold rows that live on another server: their DDL is kept, their
rows are not taken (a restore must not write them into the remote table), with a
warning. BLACKHOLE keeps no rows by nature, and a MERGE (``MRG_MyISAM``) table's rows
are those of the MyISAM tables it merges, which are dumped themselves: DDL only, no
warning. An engine not named here is dumped like a local one, with a warning that
snapkeep does not know it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import pymysql

from snapkeep.engines.mysql.connect import (
    ER_NO_SUCH_TABLE,
    Connection,
    connect,
    error_code,
    errors_as,
    query,
    query_text,
    quote_ident,
)
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.errors import PermissionDenied, ServiceUnavailable
from snapkeep.progress import Reporter


def database_info(conn: Connection, db: str) -> dict[str, str]:
    rows = query_text(conn, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME, "
                            "SCHEMA_COMMENT FROM information_schema.SCHEMATA "
                            "WHERE SCHEMA_NAME = %s", (db,))
    charset, collation, comment = rows[0]
    return {"charset": charset, "collation": collation, "comment": comment or ""}


def _show_create(conn: Connection, kind: str, name: str) -> tuple[Any, ...]:
    return query_text(conn, f"SHOW CREATE {kind} {quote_ident(name)}")[0]


# Table kinds whose rows a snapshot holds, and the kinds kept as definitions only.
ROW_TABLE_TYPES = ("BASE TABLE", "SYSTEM VERSIONED")
DEFINITION_TYPES = ("VIEW", "SEQUENCE")
TEMPORARY_TYPE = "TEMPORARY"

LOCAL_ENGINES = frozenset(["innodb", "xtradb", "myisam", "aria", "memory", "heap", "csv",
                           "archive", "rocksdb", "tokudb", "columnstore"])
REMOTE_ENGINES = frozenset(["federated", "connect", "spider"])
NO_ROW_ENGINES = frozenset(["blackhole", "mrg_myisam", "merge"])


def holds_rows(kind: str) -> bool:
    """Whether a ``TABLE_TYPE`` is a table whose rows a snapshot holds."""
    return kind in ROW_TABLE_TYPES


def is_table(kind: str) -> bool:
    """A table or a sequence: what ``RENAME TABLE`` moves between databases."""
    return kind in ROW_TABLE_TYPES or kind == "SEQUENCE"


def rows_of(name: str, engine: str | None) -> tuple[bool, str | None]:
    """Whether the dump takes the rows of a table with this engine, and the warning to log
    (None: nothing to say). See the module docstring for each decision."""
    e = (engine or "").lower()
    table = quote_ident(name)
    if e in LOCAL_ENGINES:
        return True, None
    if e in REMOTE_ENGINES:
        return False, (f"warning: table {table} is {engine}: its rows live on another server "
                       f"and are not part of the snapshot (its definition is)")
    if e in NO_ROW_ENGINES:
        return False, None
    return True, (f"warning: table {table} uses the storage engine {engine or 'unknown'}, "
                  f"which snapkeep does not know: its rows are dumped as for a local table; "
                  f"check that a restore brings them back")


def untaken_kind(name: str, kind: str) -> str | None:
    """The warning for a listed object of a kind the snapshot does not hold (None: held)."""
    if holds_rows(kind) or kind in DEFINITION_TYPES:
        return None
    return (f"warning: {quote_ident(name)} is a {kind}, which snapkeep does not dump: it is "
            f"not part of the snapshot")


def list_tables(conn: Connection, db: str) -> list[tuple[str, str, str | None, int | None]]:
    """(name, type, engine, auto_increment) of every table, sequence and view, by name."""
    rows = query_text(conn, "SELECT TABLE_NAME, TABLE_TYPE, ENGINE, AUTO_INCREMENT "
                            "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                            "ORDER BY TABLE_NAME", (db,))
    return [(r[0], r[1], r[2], None if r[3] is None else int(r[3])) for r in rows]


def primary_keys(conn: Connection, db: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    rows = query_text(conn, "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
                            "WHERE TABLE_SCHEMA = %s AND INDEX_NAME = 'PRIMARY' "
                            "ORDER BY TABLE_NAME, SEQ_IN_INDEX", (db,))
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return out


def table_ddl(conn: Connection, name: str) -> str:
    return _show_create(conn, "TABLE", name)[1]


class DDLChanged(ServiceUnavailable):
    """An object's definition changed during a live snapshot, between the read of its DDL
    and the point the rows (or pages) are of."""

    def __init__(self, name: str, kind: str = "table") -> None:
        super().__init__(f"a DDL statement changed {kind} {quote_ident(name)} during the live "
                         "snapshot; take the snapshot again, or take it without --live")


# the table option SHOW CREATE TABLE prints with the next counter value, which every
# insert moves (a column's AUTO_INCREMENT attribute has no "=")
_COUNTER = re.compile(r" AUTO_INCREMENT=\d+")


def check_unchanged(conn: Connection, db: str, listed: list[tuple[Any, ...]],
                    read: dict[str, str], objects_before: dict[str, Any],
                    objects_after: dict[str, Any]) -> None:
    """A live dump's definitions, read before its point, are still the database's after it:
    the same tables, views and sequences (``listed``), each table's DDL (``read``: name →
    the ``SHOW CREATE TABLE`` text read before; its AUTO_INCREMENT counter aside) and the
    same views, triggers, routines and events (``objects``, read before and after);
    ``DDLChanged`` naming the first that is not."""
    kinds = {str(n): str(k) for n, k, _, _ in listed}
    for name, kind, _, _ in list_tables(conn, db):
        if kinds.pop(name, None) != kind:  # created, or its kind changed
            raise DDLChanged(name, _kind(kind))
    for name, kind in kinds.items():  # dropped
        raise DDLChanged(name, _kind(kind))
    for key in ("views", "triggers", "routines", "events"):
        before = {(o.get("type"), o["name"]): o for o in objects_before[key]}
        after = {(o.get("type"), o["name"]): o for o in objects_after[key]}
        for kind_name in sorted(before.keys() | after.keys(), key=str):
            if before.get(kind_name) != after.get(kind_name):
                routine_type, name = kind_name
                raise DDLChanged(name, (routine_type or key[:-1]).lower())
    for name, create in read.items():
        try:
            now = table_ddl(conn, name)
        except pymysql.MySQLError as e:  # dropped or renamed meanwhile
            if error_code(e) != ER_NO_SUCH_TABLE:
                raise
            raise DDLChanged(name) from e
        if _COUNTER.sub("", now) != _COUNTER.sub("", create):
            raise DDLChanged(name)


def _kind(table_type: str) -> str:
    return "table" if holds_rows(table_type) else table_type.lower()


def sequence_state(conn: Connection, name: str) -> dict[str, Any]:
    """DDL and the next value to hand out (what SETVAL must restore)."""
    ddl = _show_create(conn, "SEQUENCE", name)[1]
    (next_value,) = query_text(conn, f"SELECT next_not_cached_value FROM {quote_ident(name)}")[0]
    return {"name": name, "create": ddl, "next_value": int(next_value)}


def views(conn: Connection, names: Iterable[str], reporter: Reporter) -> list[dict[str, Any]]:
    """Views in creation order (dependencies first); a broken view is skipped with a log line."""
    found: list[dict[str, Any]] = []
    for name in names:
        try:
            _, ddl, cs_client, coll_conn = _show_create(conn, "VIEW", name)
        except pymysql.MySQLError as e:
            reporter.log(f"warning: view {quote_ident(name)} is skipped, the server cannot show "
                         f"its definition: {e.args[-1]}")
            continue
        found.append({"name": name, "create": ddl, "character_set_client": cs_client,
                      "collation_connection": coll_conn})
    return order_views(found)


_IDENT = re.compile(r"`((?:[^`]|``)*)`")


def referenced_names(ddl: str) -> set[str]:
    """Every backtick-quoted identifier in a statement (``SHOW CREATE`` quotes them all)."""
    return {m.group(1).replace("``", "`") for m in _IDENT.finditer(ddl)}


def order_views(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Topological order by the views each definition names; stable (by name) and total.

    A name match can over-approximate a dependency (a column alias equal to a view's
    name); a resulting cycle is broken in name order, and the restore retries a view
    whose dependency is not there yet.
    """
    by_name = {v["name"]: v for v in items}
    deps = {name: (referenced_names(v["create"]) & by_name.keys()) - {name}
            for name, v in by_name.items()}
    ordered: list[dict[str, Any]] = []
    done: set[str] = set()
    remaining = sorted(by_name)
    while remaining:
        ready = [n for n in remaining if deps[n] <= done]
        if not ready:
            ready = [remaining[0]]
        for n in ready:
            ordered.append(by_name[n])
            done.add(n)
        remaining = [n for n in remaining if n not in done]
    return ordered


def triggers(conn: Connection, db: str) -> list[dict[str, Any]]:
    """Triggers per table, in their firing order (recreating them in order keeps it)."""
    rows = query_text(conn, "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM "
                            "information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s ORDER BY "
                            "EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
                      (db,))
    out = []
    for name, table in rows:
        r = _show_create(conn, "TRIGGER", name)
        out.append({"name": name, "table": table, "sql_mode": r[1], "create": r[2],
                    "character_set_client": r[3], "collation_connection": r[4],
                    "database_collation": r[5]})
    return out


def routines(conn: Connection, db: str, reporter: Reporter) -> list[dict[str, Any]]:
    rows = query_text(conn, "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES "
                            "WHERE ROUTINE_SCHEMA = %s ORDER BY ROUTINE_TYPE, ROUTINE_NAME", (db,))
    out = []
    for kind, name in rows:
        if kind not in ("PROCEDURE", "FUNCTION"):
            reporter.log(f"warning: {kind.lower()} {quote_ident(name)} is not supported and "
                         f"is not part of the snapshot")
            continue
        r = _show_create(conn, kind, name)
        if r[2] is None:
            raise PermissionDenied(f"the server does not show the body of {kind.lower()} "
                                   f"{quote_ident(name)}: the backup user needs SELECT on "
                                   f"mysql.proc or to be its DEFINER")
        out.append({"type": kind, "name": name, "sql_mode": r[1], "create": r[2],
                    "character_set_client": r[3], "collation_connection": r[4],
                    "database_collation": r[5]})
    return out


def events(conn: Connection, db: str) -> list[dict[str, Any]]:
    rows = query_text(conn, "SELECT EVENT_NAME FROM information_schema.EVENTS "
                            "WHERE EVENT_SCHEMA = %s ORDER BY EVENT_NAME", (db,))
    out = []
    for (name,) in rows:
        r = _show_create(conn, "EVENT", name)
        out.append({"name": name, "sql_mode": r[1], "time_zone": r[2], "create": r[3],
                    "character_set_client": r[4], "collation_connection": r[5],
                    "database_collation": r[6]})
    return out


def objects(conn: Connection, db: str, reporter: Reporter) -> dict[str, Any]:
    """Everything but table data and table DDL: what a swap replaces in the live database."""
    view_names = [n for n, kind, _, _ in list_tables(conn, db) if kind == "VIEW"]
    return {"views": views(conn, view_names, reporter), "triggers": triggers(conn, db),
            "routines": routines(conn, db, reporter), "events": events(conn, db)}


def estimate_size(target: MySQLTarget) -> int:
    """Bytes of table data (information_schema ``DATA_LENGTH``) for progress totals."""
    conn = connect(target, doing="estimating the database size")
    try:
        with errors_as(target, "estimating the database size"):
            rows = query(conn, "SELECT COALESCE(SUM(DATA_LENGTH), 0) FROM information_schema.TABLES"
                               " WHERE TABLE_SCHEMA = %s AND TABLE_TYPE IN %s",
                         (target.database, ROW_TABLE_TYPES))
        return int(rows[0][0])
    finally:
        conn.close()
