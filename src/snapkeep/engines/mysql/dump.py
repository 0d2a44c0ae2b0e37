"""Dumping one database: schema objects verbatim and rows streamed into the repository.

One connection, one ``START TRANSACTION WITH CONSISTENT SNAPSHOT``: every InnoDB table is
read at the same point in time (MyISAM/Aria tables are consistent only under
``hold_writes``). Rows are fetched unbuffered as raw bytes, ordered by primary key, and
encoded line by line into a ``BlobWriter`` per table, so memory stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
import pymysql.cursors

from snapkeep.engines.mysql import schema
from snapkeep.engines.mysql.connect import (
    ER_SPECIFIC_ACCESS_DENIED,
    connect,
    error_code,
    errors_as,
    query,
    query_text,
    quote_ident,
)
from snapkeep.engines.mysql.encoding import Column, encode_row
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.progress import Reporter
from snapkeep.repository import Repository

FORMAT = 1
FETCH_ROWS = 2000
WRITE_BYTES = 1 << 20
# Reading: no strictness, no CHAR padding; TIMESTAMPs exactly as stored (UTC).
DUMP_SESSION = ("SET SESSION sql_mode = '', time_zone = '+00:00', "
                "net_write_timeout = 3600, net_read_timeout = 3600")


@contextmanager
def hold_writes(target: MySQLTarget, reporter: Reporter) -> Iterator[None]:
    """Block writes to the database's base tables for the duration of the block.

    Uses ``FLUSH TABLES … WITH READ LOCK`` on a separate connection (``LOCK TABLES …
    READ`` when the user lacks RELOAD); the lock is released on exit, also on errors,
    and the time writes were held is logged.
    """
    conn = connect(target, doing="holding writes")
    try:
        with errors_as(target, "holding writes"):
            tables = [n for n, kind, _, _ in schema.list_tables(conn, target.database)
                      if kind == "BASE TABLE"]
        if not tables:
            yield
            return
        names = ", ".join(quote_ident(t) for t in tables)
        with errors_as(target, "holding writes"):
            try:
                query(conn, f"FLUSH TABLES {names} WITH READ LOCK")
            except pymysql.MySQLError as e:
                if error_code(e) != ER_SPECIFIC_ACCESS_DENIED:
                    raise
                query(conn, "LOCK TABLES " + ", ".join(
                    f"{quote_ident(t)} READ" for t in tables))
        started = time.monotonic()
        try:
            yield
        finally:
            try:
                query(conn, "UNLOCK TABLES")
            finally:
                reporter.log(f"writes to {target.describe()} held for "
                             f"{time.monotonic() - started:.1f} s")
    finally:
        conn.close()


def dump_database(target: MySQLTarget, repo: Repository, reporter: Reporter) -> dict[str, Any]:
    """Dump the target database; return its JSON-able description for the manifest.

    Raises ServiceUnavailable/PermissionDenied (naming the target) on server errors.
    """
    conn = connect(target, raw=True, doing="dumping the database")
    try:
        with errors_as(target, "dumping the database"):
            return _dump(conn, target, repo, reporter)
    finally:
        conn.close()


def _dump(conn: pymysql.connections.Connection, target: MySQLTarget, repo: Repository,
          reporter: Reporter) -> dict[str, Any]:
    db = target.database
    query(conn, DUMP_SESSION)
    query(conn, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    query(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT")
    version, global_mode = query_text(conn, "SELECT VERSION(), @@GLOBAL.sql_mode")[0]
    info = schema.database_info(conn, db)
    listed = schema.list_tables(conn, db)
    columns = schema.table_columns(conn, db)
    pks = schema.primary_keys(conn, db)
    sizes = dict(query_text(conn, "SELECT TABLE_NAME, COALESCE(DATA_LENGTH, 0) FROM "
                                  "information_schema.TABLES WHERE TABLE_SCHEMA = %s", (db,)))
    tables: list[dict[str, Any]] = []
    sequences: list[dict[str, Any]] = []
    for name, kind, engine, auto_inc in listed:
        if kind == "SEQUENCE":
            sequences.append(schema.sequence_state(conn, name))
        elif kind == "BASE TABLE":
            tables.append({"name": name, "engine": engine, "create": schema.table_ddl(conn, name),
                           "auto_increment": auto_inc,
                           "columns": [c.to_json() for c in columns.get(name, [])],
                           "order_by": pks.get(name, [])})
    objects = schema.objects(conn, db, reporter)
    estimates = {t["name"]: int(sizes.get(t["name"]) or 0) for t in tables}
    reporter.add_total(sum(estimates.values()))

    query(conn, "SET SESSION character_set_results = binary")
    stored = 0
    for table in tables:
        cols = [Column.from_json(c) for c in table["columns"]]
        ref, rows, nbytes = _dump_rows(conn, repo, table["name"], cols, table["order_by"],
                                       estimates[table["name"]], reporter)
        table["row_count"] = rows
        table["rows"] = ref.to_json()
        stored += nbytes
    query(conn, "SET SESSION character_set_results = utf8mb4")
    query(conn, "COMMIT")
    reporter.log(f"dumped {len(tables)} tables, {sum(t['row_count'] for t in tables)} rows "
                 f"({stored} bytes) from {target.describe()}")
    return {
        "kind": "mysql", "format": FORMAT, "server_version": version, "database": db,
        "charset": info["charset"], "collation": info["collation"], "comment": info["comment"],
        "sql_mode": global_mode, "tables": tables, "sequences": sequences,
        "views": objects["views"], "triggers": objects["triggers"],
        "routines": objects["routines"], "events": objects["events"], "size_bytes": stored,
    }


def select_rows_sql(table: str, columns: list[Column], order_by: list[str]) -> str:
    sql = "SELECT " + ", ".join(c.select_expr() for c in columns) + " FROM " + quote_ident(table)
    if order_by:
        sql += " ORDER BY " + ", ".join(quote_ident(c) for c in order_by)
    return sql


def _dump_rows(conn: pymysql.connections.Connection, repo: Repository, table: str,
               columns: list[Column], order_by: list[str], estimate: int,
               reporter: Reporter) -> tuple[Any, int, int]:
    writer = repo.blob_writer()
    rows = 0
    advanced = 0
    pending: list[bytes] = []
    pending_bytes = 0
    if columns:
        with conn.cursor(pymysql.cursors.SSCursor) as cur:
            cur.execute(select_rows_sql(table, columns, order_by))
            while batch := cur.fetchmany(FETCH_ROWS):
                for row in batch:
                    line = encode_row(row)
                    pending.append(line)
                    pending_bytes += len(line)
                rows += len(batch)
                if pending_bytes >= WRITE_BYTES:
                    writer.write(b"".join(pending))
                    step = min(pending_bytes, max(estimate - advanced, 0))
                    reporter.advance(step)
                    advanced += step
                    pending.clear()
                    pending_bytes = 0
    if pending:
        writer.write(b"".join(pending))
    if estimate > advanced:
        reporter.advance(estimate - advanced)
    ref = writer.close()
    return ref, rows, ref.size
