"""Dumping one database: schema objects verbatim and rows streamed into the repository.

A consistent parallel dump (DESIGN.md §4):

1. A coordinator connection (PyMySQL) lists tables, columns, keys and sizes and reads
   every table's DDL (with the exact ENUM/SET members and defaults the server prints as
   '?', ``members.py``).
2. ``threads`` worker connections (mysqlclient, raw bytes, see ``connect.py``) each run
   ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` while a separate connection holds the
   server's lightest commit-blocking lock (``backup_lock.py``), so they all see one point
   in time. Non-transactional tables (MyISAM, Aria, MEMORY…) are read by the workers
   while the lock is still held, as long as their estimated total stays under
   ``NONTX_UNDER_LOCK_BYTES`` (16 MiB, about half a second of writes held); larger ones
   are read after the release and flagged in the log ("read outside the consistent
   point"). The lock is then released; the time writes were held is logged and stored
   as ``writes_held_seconds``. Under ``hold_writes`` (non-live snapshots) the database is
   already frozen, so no lock is taken and every table is consistent.
3. The coordinator cuts each table with a usable primary key into ranges
   (``ranges.py``) and queues them, largest tables first; the workers stream each range
   into its own blob (``workers.py``) while the coordinator reads views, triggers,
   routines, events and sequences.

Without the privilege for any backup lock (RELOAD), the dump runs on one worker
connection, which is consistent on its own (except for non-transactional tables).

Description format 3 (format 2 had every part in the ``escaped`` encoding and no
``"encoding"`` key; format 1 one ``"rows"`` blob per table instead of ``"parts"``)::

    {"kind": "mysql", "format": 3, "server_version", "database", "charset", "collation",
     "comment", "sql_mode", "size_bytes", "writes_held_seconds", "backup_lock",
     "tables": [{"name", "engine", "create", "auto_increment", "columns": [[name, codec]],
                 "order_by": [pk columns], "row_count": n,
                 "parts": [{BlobRef json..., "encoding": "quoted" | "escaped"}, ...],
                 "digest": {"algorithm": "xxh64x2", "encoding", "rows": n, "sum": hex}}],
     "sequences", "views", "triggers", "routines", "events"}

Parts are contiguous primary-key ranges in PK order; an empty table has no parts.
``digest`` (any format; absent from snapshots made before it existed) is the
order-independent digest of the table's lines as stored, summed over its parts
(``digest.py``, which also gives the form of a table whose parts mixed encodings): every
restore checks the lines it feeds against it, and ``verify.table_digests`` recomputes it
from a restored copy.

Added keys (any format; older readers ignore them or refuse): a system-versioned table
(``TABLE_TYPE`` ``SYSTEM VERSIONED``) has ``"system_time": {"start", "end", "history"}``
(its period columns; ``history`` false when versioned by transaction id, whose history
cannot be restored and is not dumped). With ``history``, its parts hold every row
version (``FOR SYSTEM_TIME ALL``) and ``columns`` ends with the two period columns in the
codec ``period``, unknown to older snapkeeps, which therefore refuse such a snapshot
rather than restore its history as current rows (``versioning.py``). A table whose engine
keeps its rows elsewhere (FEDERATED…, see ``schema.py``) has ``"columns": []`` and no
parts. Which table kinds and engines are dumped is decided in ``schema.py``.

How rows are read: where the C row pump is built (``_rowpump.c``, with mysqlclient), every
part is a plain SELECT of the columns, fetched and encoded as ``escaped`` lines in C with
the GIL released; that costs the server no more than serving ``mariadb-dump``. Without
the pump, MariaDB composes ``quoted`` lines itself (format 3, ``encoding.py``), which
spares Python the per-field work at about 50 % more server CPU; MySQL then gets format 2
(escaped lines encoded in Python), since server-side line composition has not been tried
against a MySQL server here.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql

from snapkeep.engines.mysql import members, schema, versioning
from snapkeep.engines.mysql.backup_lock import LOCK_SESSION, LockPlan, Server, plan_for
from snapkeep.engines.mysql.connect import (
    ER_SPECIFIC_ACCESS_DENIED,
    Connection,
    StreamReader,
    connect,
    connect_stream,
    error_code,
    errors_as,
    query,
    query_text,
    quote_ident,
    stream_driver,
)
from snapkeep.engines.mysql.digest import table_digest
from snapkeep.engines.mysql.encoding import PERIOD, QUOTED, Column, codec_for, quoted_line_expr
from snapkeep.engines.mysql.ranges import (
    KeyColumn,
    key_columns,
    key_columns_sql,
    range_conditions,
    rows_per_part,
    select_sql,
    split_points,
)
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.engines.mysql.workers import Part, SafeReporter, WorkerPool
from snapkeep.progress import Reporter
from snapkeep.repository import ROWS_ZSTD_LEVEL, Repository

FORMAT = 3
# Reading: no strictness, no CHAR padding; TIMESTAMPs exactly as stored (UTC).
DUMP_SESSION = ("SET SESSION sql_mode = '', time_zone = '+00:00', "
                "net_write_timeout = 3600, net_read_timeout = 3600")
# Non-transactional tables read while writes are held, at most this many bytes in all.
NONTX_UNDER_LOCK_BYTES = 16 << 20
TRANSACTIONAL_ENGINES = frozenset(["innodb", "xtradb", "rocksdb", "tokudb"])
DOING = "dumping the database"

# Databases whose writes ``hold_writes`` holds in this process: no backup lock needed.
_held: set[tuple[str, int, str | None, str]] = set()
_held_mutex = threading.Lock()


def _key(target: MySQLTarget) -> tuple[str, int, str | None, str]:
    return (target.host, target.port, target.unix_socket, target.database)


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
                      if schema.holds_rows(kind)]
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
        with _held_mutex:
            _held.add(_key(target))
        try:
            yield
        finally:
            with _held_mutex:
                _held.discard(_key(target))
            try:
                query(conn, "UNLOCK TABLES")
            finally:
                reporter.log(f"writes to {target.describe()} held for "
                             f"{time.monotonic() - started:.1f} s")
    finally:
        conn.close()


def default_format() -> int:
    """The newest description format the restore side of this snapkeep reads."""
    from snapkeep.engines.mysql.restore import SUPPORTED_FORMATS

    return max(f for f in SUPPORTED_FORMATS if f <= FORMAT)


def dump_database(target: MySQLTarget, repo: Repository, reporter: Reporter, *,
                  threads: int | None = None, fmt: int | None = None,
                  zstd_level: int = ROWS_ZSTD_LEVEL, use_pump: bool = True) -> dict[str, Any]:
    """Dump the target database on ``threads`` connections (default: the CPU count);
    return its JSON-able description (format 2, see the module docstring) for the manifest.

    ``fmt=1`` writes the previous format (one blob per table, no ranges); the default is
    ``default_format()``. Raises ServiceUnavailable/PermissionDenied (naming the target)
    on server errors; on any error every connection is closed and the lock released.
    """
    n = max(1, threads if threads is not None else (os.cpu_count() or 1))
    dump = _Dump(target, repo, SafeReporter(reporter), n, fmt or default_format(), zstd_level,
                 use_pump)
    try:
        with errors_as(target, DOING):
            return dump.run()
    finally:
        dump.close()


class _Dump:
    def __init__(self, target: MySQLTarget, repo: Repository, reporter: SafeReporter,
                 threads: int, fmt: int, zstd_level: int = ROWS_ZSTD_LEVEL,
                 use_pump: bool = True) -> None:
        self.target = target
        self.zstd_level = zstd_level
        self.repo = repo
        self.reporter = reporter
        self.threads = threads
        self.fmt = fmt
        self.use_pump = use_pump
        self.conn: Connection | None = None
        self.lock_conn: Connection | None = None
        self.pool: WorkerPool | None = None
        self.suspects: dict[str, list[members.Suspect]] = {}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        for conn in (self.lock_conn, self.conn):
            if conn is not None:
                with contextlib.suppress(Exception):  # the server may be gone
                    conn.close()
        self.lock_conn = self.conn = None

    # -- the whole dump ----------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        target, db = self.target, self.target.database
        self.conn = conn = connect(target, raw=True, doing=DOING)
        query(conn, DUMP_SESSION)
        version, global_mode = query_text(conn, "SELECT VERSION(), @@GLOBAL.sql_mode")[0]
        server = Server.parse(version)
        if self.fmt >= 3 and not server.mariadb:
            self.fmt = 2
        info = schema.database_info(conn, db)
        listed = schema.list_tables(conn, db)
        columns = dumped_columns(conn, db, server, quoted=self.fmt >= 3)
        pks = schema.primary_keys(conn, db)
        self.suspects = members.suspects(conn, db)
        keys = key_columns(query_text(conn, key_columns_sql(), (db,)))
        stats = {r[0]: (int(r[1] or 0), int(r[2] or 0), int(r[3] or 0)) for r in query_text(
            conn, "SELECT TABLE_NAME, DATA_LENGTH, AVG_ROW_LENGTH, TABLE_ROWS "
                  "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (db,))}
        tables: list[dict[str, Any]] = []
        for name, kind, engine, auto_inc in listed:
            warning = schema.untaken_kind(name, kind)
            if warning:
                self.reporter.log(warning)
            elif schema.holds_rows(kind):
                tables.append(self._table(name, kind, engine, auto_inc, columns.get(name, []),
                                          pks.get(name, [])))
        estimates = {t["name"]: stats.get(t["name"], (0, 0, 0))[0] for t in tables}
        self.reporter.add_total(sum(estimates.values()))

        nontx = [t for t in tables if (t["engine"] or "").lower() not in TRANSACTIONAL_ENGINES]
        under_lock: list[dict[str, Any]] = []
        budget = NONTX_UNDER_LOCK_BYTES
        for t in sorted(nontx, key=lambda t: estimates[t["name"]]):
            if estimates[t["name"]] <= budget:
                under_lock.append(t)
                budget -= estimates[t["name"]]
        whole: dict[str, Part] = {}

        def whole_part(t: dict[str, Any]) -> Part:
            part = self._part(t, 0, "", estimates[t["name"]])
            whole[t["name"]] = part
            return part

        self._open_workers(min(self.threads, max(1, len(tables))))
        held, lock_name, frozen = self._consistent_point(
            server, [whole_part(t) for t in under_lock if t["columns"]])
        for t in nontx:
            if frozen:
                continue
            why = ("no backup lock" if lock_name is None else
                   f"{estimates[t['name']] >> 20} MiB, over the {NONTX_UNDER_LOCK_BYTES >> 20} "
                   f"MiB read while writes are held" if t not in under_lock else "")
            if why:
                self.reporter.log(f"table {quote_ident(t['name'])} is {t['engine']}: read "
                                  f"outside the consistent point ({why})")

        # Ranges, largest tables first, queued as soon as each table's cut is known.
        assert self.pool is not None
        pool = self.pool
        pool.start()
        parts: dict[str, list[Part]] = {}
        for t in sorted(tables, key=lambda t: (-estimates[t["name"]], t["name"])):
            name = t["name"]
            if name in whole:
                parts[name] = [whole[name]]
                continue
            if not t["columns"]:
                parts[name] = []
                self.reporter.advance(estimates[name])
                continue
            parts[name] = []
            _, avg_row, row_estimate = stats.get(name, (0, 0, 0))
            for part in self._cut(t, keys.get(name), avg_row, row_estimate, estimates[name]):
                parts[name].append(part)
                pool.submit(part)
        sequences = [schema.sequence_state(conn, name)
                     for name, kind, _, _ in listed if kind == "SEQUENCE"]
        objects = schema.objects(conn, db, self.reporter)
        pool.join()

        stored = 0
        total_rows = 0
        for t in tables:
            refs = [p.ref for p in parts[t["name"]] if p.ref is not None]
            t["row_count"] = sum(p.rows for p in parts[t["name"]])
            t["digest"] = table_digest([(p.encoding, p.digest) for p in parts[t["name"]]
                                        if p.digest is not None])
            total_rows += t["row_count"]
            stored += sum(r.size for r in refs)
            if self.fmt == 1:
                t["rows"] = (refs[0] if refs else self.repo.blob_writer().close()).to_json()
            elif self.fmt == 2:
                t["parts"] = [r.to_json() for r in refs if r.size > 0]
            else:
                t["parts"] = [{**p.ref.to_json(), "encoding": p.encoding}
                              for p in parts[t["name"]] if p.ref is not None and p.ref.size > 0]
        self.reporter.log(
            f"dumped {len(tables)} tables, {total_rows} rows ({stored} bytes) from "
            f"{target.describe()} on {len(pool.readers)} connection(s) ({stream_driver()})")
        return {
            "kind": "mysql", "format": self.fmt, "server_version": version, "database": db,
            "charset": info["charset"], "collation": info["collation"],
            "comment": info["comment"], "sql_mode": global_mode, "tables": tables,
            "sequences": sequences, "views": objects["views"], "triggers": objects["triggers"],
            "routines": objects["routines"], "events": objects["events"], "size_bytes": stored,
            "writes_held_seconds": round(held, 6), "backup_lock": lock_name,
        }

    def _table(self, name: str, kind: str, engine: str | None, auto_inc: int | None,
               columns: list[Column], pk: list[str]) -> dict[str, Any]:
        """A table's description; its columns are those whose rows are dumped (none when
        its engine keeps them elsewhere, see ``schema.rows_of``)."""
        assert self.conn is not None
        create = schema.table_ddl(self.conn, name)
        if name in self.suspects:  # 4-byte characters the statement prints as '?'
            create = members.exact_ddl(self.conn, name, create, self.suspects[name],
                                       self.reporter)
        take, note = schema.rows_of(name, engine)
        if note:
            self.reporter.log(note)
        t: dict[str, Any] = {"name": name, "engine": engine, "create": create,
                             "auto_increment": auto_inc}
        if kind == versioning.TYPE:
            period = versioning.read(self.conn, self.target.database, name, create)
            t["system_time"] = period.to_json()
            if not period.history:
                self.reporter.log(versioning.transaction_warning(name))
            elif take:
                columns = [*columns, Column(period.start, PERIOD), Column(period.end, PERIOD)]
                if pk and period.end not in pk:  # implicit: ROW_END is in the key, unlisted
                    pk = [*pk, period.end]
        t["columns"] = [c.to_json() for c in columns] if take else []
        t["order_by"] = pk
        return t

    @property
    def pumps(self) -> bool:
        """Every worker encodes lines in C (``connect.StreamReader.pump``): parts are then
        read in the ``escaped`` encoding, which costs the server far less than composing
        ``quoted`` lines (see the module docstring)."""
        return self.use_pump and self.pool is not None and all(
            r.pumps for r in self.pool.readers)

    # -- connections and the consistent point ------------------------------------------------

    def _open_workers(self, n: int) -> None:
        readers: list[StreamReader] = []
        self.pool = WorkerPool(readers, lambda: self.repo.blob_writer(self.zstd_level),
                               self.reporter)
        for _ in range(n):
            reader = StreamReader(connect_stream(self.target, doing=DOING))
            readers.append(reader)
            reader.execute(DUMP_SESSION)
            reader.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            reader.execute("SET SESSION character_set_results = binary")

    def _start_snapshots(self) -> None:
        assert self.pool is not None
        for reader in self.pool.readers:
            reader.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")

    def _consistent_point(self, server: Server, nontx_parts: list[Part]
                          ) -> tuple[float, str | None, bool]:
        """Start every worker's snapshot at one point; dump ``nontx_parts`` there.

        Returns (seconds writes were held, lock used or None, whether ``hold_writes``
        holds the whole database).
        """
        assert self.pool is not None
        pool = self.pool
        with _held_mutex:
            frozen = _key(self.target) in _held
        if frozen:  # hold_writes: nothing can change; every table is consistent
            self._start_snapshots()
            pool.run_now(nontx_parts)
            self.reporter.log("writes are held for the whole dump: no backup lock needed")
            return 0.0, None, True
        plan = plan_for(server)
        self.lock_conn = lock_conn = connect(self.target, doing="taking the backup lock")
        query(lock_conn, LOCK_SESSION)
        started = time.monotonic()
        acquired = False
        try:
            try:
                for sql in plan.acquire:
                    if sql.startswith(("BACKUP STAGE BLOCK", "FLUSH")):
                        started = time.monotonic()
                    query(lock_conn, sql)
                acquired = True
            except pymysql.MySQLError as e:
                if error_code(e) != ER_SPECIFIC_ACCESS_DENIED:
                    raise
                _release(lock_conn, plan)
                self._single_connection(plan, e)
                pool.run_now(nontx_parts)
                return 0.0, None, False
            self._start_snapshots()
            pool.run_now(nontx_parts)
        finally:
            if acquired:
                _release(lock_conn, plan)
                held = time.monotonic() - started
            self.lock_conn = None
            lock_conn.close()
        self.reporter.log(f"writes held for {held:.3f} s ({plan.name}) while "
                          f"{len(pool.readers)} connection(s) started their snapshot"
                          + (f" and {len(nontx_parts)} non-transactional table(s) were read"
                             if nontx_parts else ""))
        return held, plan.name, False

    def _single_connection(self, plan: LockPlan, e: pymysql.MySQLError) -> None:
        assert self.pool is not None
        for reader in self.pool.readers[1:]:
            reader.close()
        del self.pool.readers[1:]
        self.reporter.log(f"warning: no privilege for {plan.name} ({e.args[-1]}): dumping on "
                          f"one connection, without a lock")
        self._start_snapshots()

    # -- ranges ----------------------------------------------------------------------------------

    def _cut(self, t: dict[str, Any], key: KeyColumn | None, avg_row: int, row_estimate: int,
             estimate: int) -> Iterator[Part]:
        """The table's parts, each yielded as soon as its range is known (so the workers
        start on the first while the rest of a walked key is still being cut)."""
        name = t["name"]
        if self.fmt < 2 or key is None or not key.splittable:
            yield self._part(t, 0, "", estimate)
            return
        per_part = rows_per_part(avg_row)
        assert self.conn is not None
        conn = self.conn
        points = split_points(lambda sql: _first_row(conn, sql), name, key, per_part,
                              row_estimate)
        each = per_part * max(avg_row, 1)
        left = estimate
        i = -1
        for i, cond in enumerate(range_conditions(key, points)):
            size = min(each, left) if " < " in cond else left  # the last part: the rest
            left -= size
            yield self._part(t, i, cond, size)
        if i > 0:
            self.reporter.log(f"table {quote_ident(name)}: {i + 1} ranges of about "
                              f"{per_part} rows on {quote_ident(key.name)}")


    def _part(self, t: dict[str, Any], index: int, condition: str, estimate: int) -> Part:
        """Part ``index`` of table ``t``: the rows matching ``condition`` ("" for all)."""
        cols = [Column.from_json(c) for c in t["columns"]]
        every = bool((t.get("system_time") or {}).get("history"))
        escaped = select_sql(t["name"], [c.select_expr() for c in cols], t["order_by"],
                             condition, all_versions=every)
        if self.fmt < 3 or self.pumps:
            return Part(t["name"], index, escaped, estimate)
        quoted = select_sql(t["name"], [quoted_line_expr(cols)], t["order_by"], condition,
                            all_versions=every)
        return Part(t["name"], index, quoted, estimate, encoding=QUOTED, fallback_sql=escaped)


def _first_row(conn: Connection | None, sql: str) -> tuple[Any, ...] | None:
    assert conn is not None
    rows = query(conn, sql)
    return tuple(rows[0]) if rows else None


def _release(conn: Connection, plan: LockPlan) -> None:
    for sql in plan.release:
        # not held (e.g. acquiring failed half-way): closing the connection releases anyway
        with contextlib.suppress(pymysql.MySQLError):
            query(conn, sql)


def dumped_columns(conn: Connection, db: str, server: Server, *, quoted: bool = False
                   ) -> dict[str, list[Column]]:
    """The dumped columns of every table (generated ones left out), in table order."""
    out: dict[str, list[Column]] = {}
    for table, column, data_type in query_text(conn, columns_sql(server), (db,)):
        out.setdefault(table, []).append(Column(column, codec_for(data_type, quoted=quoted)))
    return out


def columns_sql(server: Server) -> str:
    """Non-generated columns of a schema. MariaDB says so in ``IS_GENERATED``; MySQL 8 has
    no such column: a generated column has a ``GENERATION_EXPRESSION`` there (``EXTRA``
    alone would also match ``DEFAULT_GENERATED``, an expression default). Invisible
    columns are listed by both and named explicitly in the SELECT, so they are dumped."""
    generated = ("IS_GENERATED = 'NEVER'" if server.mariadb else
                 "COALESCE(GENERATION_EXPRESSION, '') = ''")
    return ("SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = %s AND {generated} ORDER BY TABLE_NAME, ORDINAL_POSITION")


def select_rows_sql(table: str, columns: list[Column], order_by: list[str]) -> str:
    return select_sql(table, [c.select_expr() for c in columns], order_by)
