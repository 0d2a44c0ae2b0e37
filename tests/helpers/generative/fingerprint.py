"""What the generative tests compare: ``db_state`` plus what it leaves out.

``tests/helpers/dbstate.db_state`` covers base tables, sequences, views and stored objects;
this adds, without changing it: whether the database exists at all, every table whatever
its ``TABLE_TYPE`` (a system-versioned table is not a 'BASE TABLE'), each table's exact
values column by column (invisible and generated columns included, -0.0 kept apart from
0.0, bytes as hex), and the history rows of system-versioned tables with their
ROW_START/ROW_END.
"""

from __future__ import annotations

import codecs
from typing import Any

from tests.helpers.dbstate import db_state, q


def _utf8_escaped(name: str) -> codecs.CodecInfo | None:
    """utf-8 that keeps undecodable bytes (surrogateescape): SHOW CREATE TABLE prints a
    binary column's DEFAULT as raw bytes, which strict decoding cannot read."""
    if name != "utf8_escaped":
        return None
    utf8 = codecs.lookup("utf-8")
    return codecs.CodecInfo(lambda s, errors="strict": utf8.encode(s, "surrogateescape"),
                            lambda b, errors="strict": utf8.decode(b, "surrogateescape"),
                            name="utf8_escaped")


codecs.register(_utf8_escaped)

_FLOATS = {"float", "double"}
_AS_TEXT = {"decimal", "date", "time", "datetime", "timestamp", "year", "inet4", "inet6",
            "uuid", "enum", "set"}
_INTS = {"tinyint", "smallint", "mediumint", "int", "bigint"}


def _rows(conn: Any, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def _exact(column: str, data_type: str) -> str:
    col = q(column)
    if data_type in _FLOATS:
        return f"CAST({col} AS DOUBLE)"
    if data_type in _INTS:
        return col
    if data_type in ("enum", "set"):
        return f"CONCAT({col} + 0, ':', HEX({col}))"
    if data_type in _AS_TEXT:
        return f"CAST({col} AS CHAR)"
    return f"HEX({col})"


def table_values(conn: Any, db: str, table: str, *, history: bool = False) -> list[str]:
    cols = _rows(conn, "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE "
                       "TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                 (db, table))
    exprs = [_exact(name, dtype) for name, dtype in cols]
    src = f"{q(db)}.{q(table)}"
    if history:
        exprs += ["CAST(ROW_START AS CHAR)", "CAST(ROW_END AS CHAR)"]
        src += " FOR SYSTEM_TIME ALL"
    rows = _rows(conn, f"SELECT {', '.join(exprs)} FROM {src}")
    return sorted(repr(r) for r in rows)


def fingerprint(conn: Any, db: str) -> dict[str, Any]:
    """Everything a restore of ``db`` must bring back exactly, as one comparable dict."""
    saved, conn.encoding = conn.encoding, "utf8_escaped"  # pymysql decodes with this
    try:
        return _fingerprint(conn, db)
    finally:
        conn.encoding = saved


def _fingerprint(conn: Any, db: str) -> dict[str, Any]:
    exists = _rows(conn, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM "
                         "information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (db,))
    if not exists:
        return {"exists": False}
    state = db_state(conn, db)
    state["exists"] = True
    # not CREATE_OPTIONS: an Aria table re-created from its SHOW CREATE TABLE (which prints
    # the server's default PAGE_CHECKSUM=1) lists page_checksum=1 there, the original not
    kinds = _rows(conn, "SELECT TABLE_NAME, TABLE_TYPE, ENGINE FROM "
                        "information_schema.TABLES WHERE TABLE_SCHEMA = %s", (db,))
    state["table_kinds"] = sorted(kinds)
    values: dict[str, Any] = {}
    for name, kind, _engine in kinds:
        if kind in ("VIEW", "SEQUENCE"):
            continue
        entry: dict[str, Any] = {"rows": table_values(conn, db, name)}
        if kind == "SYSTEM VERSIONED":
            entry["create"] = _rows(conn, f"SHOW CREATE TABLE {q(db)}.{q(name)}")[0][1]
            entry["history"] = table_values(conn, db, name, history=True)
        values[name] = entry
    state["values"] = values
    state["partitions"] = _rows(
        conn, "SELECT TABLE_NAME, PARTITION_NAME, SUBPARTITION_NAME, PARTITION_METHOD, "
              "SUBPARTITION_METHOD, PARTITION_EXPRESSION, PARTITION_DESCRIPTION "
              "FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = %s "
              "AND PARTITION_NAME IS NOT NULL ORDER BY 1, 2, 3", (db,))
    state["foreign_keys"] = _rows(
        conn, "SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, "
              "DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS "
              "WHERE CONSTRAINT_SCHEMA = %s ORDER BY 1, 2", (db,))
    return state
