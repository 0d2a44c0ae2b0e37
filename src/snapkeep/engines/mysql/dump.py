"""Dumping one database: schema objects verbatim and rows streamed into the repository.

A consistent parallel dump (DESIGN.md §4):

1. A coordinator connection (PyMySQL) lists tables, columns, keys and sizes and reads
   every table's DDL (with the exact ENUM/SET members and defaults the server prints as
   '?', ``members.py``).
2. ``threads`` worker connections (mysqlclient, raw bytes, see ``connect.py``) each run
   ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` while a separate connection holds the
   server's lightest commit-blocking lock (``backup_lock.py``), so they all see one point
   in time (``consistency.py``). Non-transactional tables (MyISAM, Aria, MEMORY…) are
   read by the workers while the lock is still held, as long as their estimated total
   stays under ``NONTX_UNDER_LOCK_BYTES`` (16 MiB, about half a second of writes held);
   larger ones are read after the release and flagged in the log ("read outside the
   consistent point"). The lock is then released; the time writes were held is logged and stored
   as ``writes_held_seconds``. Under ``hold_writes`` (non-live snapshots, which pass
   ``writes_held=True``) the database is already frozen, so no lock is taken and every
   table is consistent.
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
     "binlog": {"file", "position", "gtid", "method"} (only with log_bin on),
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from snapkeep.engines.mysql import consistency, members, schema, versioning
from snapkeep.engines.mysql.backup_lock import Server
from snapkeep.engines.mysql.binlog_position import read_position
from snapkeep.engines.mysql.connect import (
    Connection,
    StreamReader,
    connect,
    connect_stream,
    errors_as,
    query,
    query_text,
    quote_ident,
    stream_driver,
)
from snapkeep.engines.mysql.descriptions import SUPPORTED_FORMATS
from snapkeep.engines.mysql.digest import table_digest
from snapkeep.engines.mysql.dump_sql import DUMP_SESSION, dumped_columns
from snapkeep.engines.mysql.encoding import PERIOD, QUOTED, Column, quoted_line_expr
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
from snapkeep.engines.seams import BlobSink
from snapkeep.faults import seam
from snapkeep.progress import NullReporter, Reporter
from snapkeep.repository import ROWS_ZSTD_LEVEL

FORMAT = 3
DOING = "dumping the database"
# (data length, average row length, row estimate) of a table, from information_schema
_Stats = tuple[int, int, int]


def default_format() -> int:
    """The newest description format the restore side of this snapkeep reads."""
    return max(f for f in SUPPORTED_FORMATS if f <= FORMAT)


def dump_database(target: MySQLTarget, repo: BlobSink, reporter: Reporter, *,
                  threads: int | None = None, fmt: int | None = None,
                  zstd_level: int = ROWS_ZSTD_LEVEL, use_pump: bool = True,
                  writes_held: bool = False) -> dict[str, Any]:
    """Dump the target database on ``threads`` connections (default: the CPU count);
    return its JSON-able description (see the module docstring) for the manifest.

    ``repo`` is what the blobs are written through (in a backup, the snapshot session).
    ``writes_held``: the caller holds the database's writes for the whole dump
    (``hold_writes``), so no backup lock is taken. ``fmt=1`` writes the previous format
    (one blob per table, no ranges); the default is ``default_format()``. Raises
    ServiceUnavailable/PermissionDenied (naming the target) on server errors; on any
    error every connection is closed and the lock released.
    """
    n = max(1, threads if threads is not None else (os.cpu_count() or 1))
    dump = _Dump(target, repo, SafeReporter(reporter), n, fmt or default_format(), zstd_level,
                 use_pump, writes_held)
    try:
        with errors_as(target, DOING):
            return dump.run()
    finally:
        dump.close()


@dataclass
class _Dump:
    target: MySQLTarget
    repo: BlobSink
    reporter: SafeReporter
    threads: int
    fmt: int
    zstd_level: int = ROWS_ZSTD_LEVEL
    use_pump: bool = True
    writes_held: bool = False
    conn: Connection | None = field(default=None, init=False)
    pool: WorkerPool | None = field(default=None, init=False)
    suspects: dict[str, list[members.Suspect]] = field(default_factory=dict, init=False)
    binlog: dict[str, Any] | None = field(default=None, init=False)
    # a lock another process holds while the snapshots start (consistency.consistent_point)
    commits_held_by: str | None = field(default=None, init=False)
    # each table's SHOW CREATE TABLE as read before the point, to be read again after it
    ddl_read: dict[str, str] = field(default_factory=dict, init=False)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        if self.conn is not None:
            with contextlib.suppress(Exception):  # the server may be gone
                self.conn.close()
        self.conn = None

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
        tables = self._tables(listed, server)
        # live: read again after the point, with the tables' DDL (schema.check_unchanged)
        objects_before = None if self.writes_held else schema.objects(conn, db, NullReporter())
        seam("mysql.dump.ddl_read")
        keys = key_columns(query_text(conn, key_columns_sql(), (db,)))
        stats: dict[str, _Stats] = {r[0]: (int(r[1] or 0), int(r[2] or 0), int(r[3] or 0))
                                    for r in query_text(
            conn, "SELECT TABLE_NAME, DATA_LENGTH, AVG_ROW_LENGTH, TABLE_ROWS "
                  "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (db,))}
        estimates = {t["name"]: stats.get(t["name"], (0, 0, 0))[0] for t in tables}
        self.reporter.add_total(sum(estimates.values()))
        pool, whole, held, lock_name = self._start(server, tables, estimates)
        parts = self._queue(pool, tables, whole, keys, stats, estimates)
        sequences = [schema.sequence_state(conn, name)
                     for name, kind, _, _ in listed if kind == "SEQUENCE"]
        objects = schema.objects(conn, db, self.reporter)
        if objects_before is not None:  # live: no DDL between the reads and the point
            schema.check_unchanged(conn, db, listed, self.ddl_to_check(), objects_before,
                                   objects)
        pool.join()
        self.reporter.flush()
        rows, stored = self._record_parts(tables, parts)
        self.reporter.log(
            f"dumped {len(tables)} tables, {rows} rows ({stored} bytes) from "
            f"{target.describe()} on {len(pool.readers)} connection(s) ({stream_driver()})")
        return {
            "kind": "mysql", "format": self.fmt, "server_version": version, "database": db,
            "charset": info["charset"], "collation": info["collation"],
            "comment": info["comment"], "sql_mode": global_mode, "tables": tables,
            "sequences": sequences, "views": objects["views"], "triggers": objects["triggers"],
            "routines": objects["routines"], "events": objects["events"], "size_bytes": stored,
            "writes_held_seconds": round(held, 6), "backup_lock": lock_name,
            **({"binlog": self.binlog} if self.binlog else {}),
        }

    def _tables(self, listed: list[tuple[Any, ...]], server: Server) -> list[dict[str, Any]]:
        """The description of every table whose rows are dumped; the others named by a
        warning (``schema.untaken_kind``)."""
        assert self.conn is not None
        conn, db = self.conn, self.target.database
        columns = dumped_columns(conn, db, server, quoted=self.fmt >= 3)
        pks = schema.primary_keys(conn, db)
        self.suspects = members.suspects(conn, db)
        tables: list[dict[str, Any]] = []
        for name, kind, engine, auto_inc in listed:
            warning = schema.untaken_kind(name, kind)
            if warning:
                self.reporter.log(warning)
            elif schema.holds_rows(kind):
                tables.append(self._table(name, kind, engine, auto_inc, columns.get(name, []),
                                          pks.get(name, [])))
        return tables

    def _table(self, name: str, kind: str, engine: str | None, auto_inc: int | None,
               columns: list[Column], pk: list[str]) -> dict[str, Any]:
        """A table's description; its columns are those whose rows are dumped (none when
        its engine keeps them elsewhere, see ``schema.rows_of``)."""
        assert self.conn is not None
        create = self.ddl_read[name] = schema.table_ddl(self.conn, name)
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

    def ddl_to_check(self) -> dict[str, str]:
        """The tables whose DDL, read before the point, is read again after it (name →
        the text read): all of them; a live physical dump checks its paged ones itself."""
        return self.ddl_read

    def _record_parts(self, tables: list[dict[str, Any]], parts: dict[str, list[Part]]
                      ) -> tuple[int, int]:
        """Each table's parts, row count and digest into its description; (rows, bytes
        stored) in all."""
        rows = stored = 0
        for t in tables:
            done = parts[t["name"]]
            refs = [p.ref for p in done if p.ref is not None]
            t["row_count"] = sum(p.rows for p in done)
            t["digest"] = table_digest([(p.encoding, p.digest) for p in done
                                        if p.digest is not None])
            rows += t["row_count"]
            stored += sum(r.size for r in refs)
            if self.fmt == 1:
                t["rows"] = (refs[0] if refs else self.repo.blob_writer().close()).to_json()
            elif self.fmt == 2:
                t["parts"] = [r.to_json() for r in refs if r.size > 0]
            else:
                t["parts"] = [{**p.ref.to_json(), "encoding": p.encoding}
                              for p in done if p.ref is not None and p.ref.size > 0]
        return rows, stored

    @property
    def pumps(self) -> bool:
        """Every worker encodes lines in C (``connect.StreamReader.pump``): parts are then
        read in the ``escaped`` encoding, which costs the server far less than composing
        ``quoted`` lines (see the module docstring)."""
        return self.use_pump and self.pool is not None and all(
            r.pumps for r in self.pool.readers)

    # -- connections and the consistent point ------------------------------------------------

    def _start(self, server: Server, tables: list[dict[str, Any]], estimates: dict[str, int]
               ) -> tuple[WorkerPool, dict[str, Part], float, str | None]:
        """Open the workers and start their snapshots at one point, the small
        non-transactional tables read there (``consistency.py``); (the pool, those tables'
        whole parts by name, seconds writes were held, the lock taken or None)."""
        pool = self._open_workers(min(self.threads, max(1, len(tables))))
        nontx = consistency.nontransactional(tables)
        under_lock = consistency.read_under_lock(nontx, estimates)
        whole = {t["name"]: self._part(t, 0, "", estimates[t["name"]])
                 for t in under_lock if t["columns"]}

        def at_point(commits_blocked: bool) -> None:  # the position of this very snapshot
            self.binlog = read_position(pool.readers[0], server,
                                        commits_blocked=commits_blocked,
                                        reporter=self.reporter)

        held, lock_name = consistency.consistent_point(
            self.target, pool, server, list(whole.values()), self.reporter,
            writes_held=self.writes_held, at_point=at_point, held_by=self.commits_held_by)
        if not self.writes_held:
            consistency.log_outside(nontx, under_lock, estimates, lock_name, self.reporter)
        return pool, whole, held, lock_name

    def _open_workers(self, n: int) -> WorkerPool:
        readers: list[StreamReader] = []
        self.pool = WorkerPool(readers, lambda: self.repo.blob_writer(self.zstd_level),
                               self.reporter)
        for _ in range(n):
            reader = StreamReader(connect_stream(self.target, doing=DOING))
            readers.append(reader)
            reader.execute(DUMP_SESSION)
            reader.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            reader.execute("SET SESSION character_set_results = binary")
        return self.pool

    # -- ranges ----------------------------------------------------------------------------------

    def _queue(self, pool: WorkerPool, tables: list[dict[str, Any]], whole: dict[str, Part],
               keys: dict[str, KeyColumn], stats: dict[str, _Stats], estimates: dict[str, int]
               ) -> dict[str, list[Part]]:
        """Every table's parts, largest tables first, each queued on the pool as soon as
        its range is known (those read at the consistent point already done)."""
        pool.start()
        parts: dict[str, list[Part]] = {}
        for t in sorted(tables, key=lambda t: (-estimates[t["name"]], t["name"])):
            name = t["name"]
            if name in whole:
                parts[name] = [whole[name]]
                continue
            parts[name] = []
            if not t["columns"]:
                self.reporter.advance(estimates[name])
                continue
            _, avg_row, row_estimate = stats.get(name, (0, 0, 0))
            for part in self._cut(t, keys.get(name), avg_row, row_estimate, estimates[name]):
                parts[name].append(part)
                pool.submit(part)
        return parts

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


def _first_row(conn: Connection, sql: str) -> tuple[Any, ...] | None:
    rows = query(conn, sql)
    return tuple(rows[0]) if rows else None
