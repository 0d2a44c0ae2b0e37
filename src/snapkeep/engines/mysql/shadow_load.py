"""Loading the shadow database: each table's row parts on parallel connections, then the
keys and foreign keys that were deferred. ``restore.py`` describes the whole restore."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pymysql

from snapkeep.engines.mysql import versioning
from snapkeep.engines.mysql.connect import (
    Connection,
    connect,
    error_code,
    errors_as,
    query,
    quote_ident,
)
from snapkeep.engines.mysql.ddl import SplitTable
from snapkeep.engines.mysql.digest import Sum, mismatch
from snapkeep.engines.mysql.encoding import ESCAPED, Column
from snapkeep.engines.mysql.loader import Loaded, load_rows
from snapkeep.engines.seams import BlobSource
from snapkeep.errors import IntegrityError, RepositoryError
from snapkeep.faults import crash_point
from snapkeep.repository import BlobRef

if TYPE_CHECKING:
    from snapkeep.engines.mysql.restore import PreparedRestore

# Loading: keep every stored value as it is (zero dates, id 0 under AUTO_INCREMENT,
# out-of-range ENUM index 0); no per-row foreign key or unique checks.
LOAD_SESSION = ("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', "
                "time_zone = '+00:00', foreign_key_checks = 0, unique_checks = 0, "
                "net_read_timeout = 3600, net_write_timeout = 3600")
# An InnoDB table is loaded with unique_checks on: with both checks off, MariaDB ≥ 10.7
# sends a LOAD DATA into an empty InnoDB table down its "bulk insert" path (rows buffered
# and sorted, under a table lock), which cost the server about twice the CPU of plain
# inserts in key order on the bench shop (docs/performance.md, "Rows"). Its load-time
# table has no secondary unique key but those an AUTO_INCREMENT column or a clustering
# key needs, which a consistent snapshot never duplicates. Other engines keep them off.
UNIQUE_CHECKS = "SET SESSION unique_checks = {}"
# The scheduler's estimate of an ALTER TABLE … ADD KEY, in bytes of rows loaded: per row
# and per key added (sorting and building each index; measured on the bench shop).
KEY_COST_PER_ROW = 16
ER_LOCK_DEADLOCK = 1213
ER_LOCK_WAIT_TIMEOUT = 1205
DDL_RETRIES = 20
# LOAD DATA warnings that mean a row or value did not go in as stored: fields and columns
# out of step, or a value out of range, invalid, too long or NULL for a NOT NULL column.
# (1265 "Data truncated" is not among them: a faithful load gives it for every ENUM value
# stored as index 0, the invalid-value marker, which loads back as index 0.)
ALTERING_WARNINGS = frozenset([1048, 1261, 1262, 1264, 1292, 1366, 1406])
LOGGED_WARNINGS = 5  # per table


def unique_checks(split: SplitTable) -> int:
    """The ``unique_checks`` that a table's rows load under (see ``UNIQUE_CHECKS``)."""
    return int(split.innodb)


@dataclass(frozen=True)
class RowPart:
    """One stored stream of a table's rows and its line encoding (``encoding.py``)."""

    ref: BlobRef
    encoding: str = ESCAPED

    @property
    def size(self) -> int:
        return self.ref.size


def row_parts(table: dict[str, Any]) -> list[RowPart]:
    """The row streams of a table: ``parts`` (formats 2 and 3, which names each part's
    encoding) or the format 1 ``rows`` blob."""
    if "parts" in table:
        return [RowPart(BlobRef.from_json(p), p.get("encoding", ESCAPED))
                for p in table["parts"]]
    return [RowPart(BlobRef.from_json(table["rows"]))]


class _Loading:
    """The state of one ``ShadowLoader.run``: what is left to do, and what is running.

    Each table is a chain: its parts, one after the other in key order (appended at the
    right edge of the clustered index, its pages fill up; parallel streams into one table
    would split pages in the middle), then its keys. At most ``threads`` statements run
    at once; a free connection takes the step whose table has the most work left (its
    parts' bytes and an estimate of its ALTER), so the longest chains start first and
    the load does not end on one large table's ALTER while the other connections idle.
    """

    def __init__(self, tables: list[dict[str, Any]], splits: dict[str, SplitTable]) -> None:
        self.tables = {t["name"]: t for t in tables}
        self.splits = splits
        # per table: the parts still to load, how many are not yet in, rows, lines fed
        self.queues = {t["name"]: [r for r in row_parts(t) if r.size and t["columns"]]
                       for t in tables}
        self.remaining = {name: len(q) for name, q in self.queues.items()}
        self.streams = sum(self.remaining.values())
        self.loaded = dict.fromkeys(self.tables, 0)
        self.fed: dict[str, list[Loaded]] = {name: [] for name in self.tables}
        self.loading: set[str] = set()  # tables with a part being loaded
        self.ddl: dict[str, list[str]] = {}  # tables whose keys are ready to be added
        self.pending: dict[Future[Any], tuple[str, str]] = {}  # running: (kind, table)
        self.late: list[str] = []  # ALTERs adding foreign keys once every table is complete
        self.alter_count = 0

    def alter_cost(self, name: str) -> int:
        rows = int(self.tables[name].get("row_count", 0) or 0)
        return rows * len(self.splits[name].keys) * KEY_COST_PER_ROW

    def work_left(self, name: str) -> int:
        """The table's chain still to run, in bytes of rows: parts left, then its keys."""
        return sum(p.size for p in self.queues[name]) + self.alter_cost(name)

    def next_step(self) -> tuple[str, str] | None:
        """("load" | "ddl", table) of the ready step with the most work left behind it."""
        steps = [("ddl", name) for name in self.ddl]
        steps += [("load", name) for name, q in self.queues.items()
                  if q and name not in self.loading]
        if not steps:
            return None
        return max(steps, key=lambda s: (self.work_left(s[1]) if s[0] == "load"
                                         else self.alter_cost(s[1])))


class ShadowLoader:
    """Loads every table's parts on ``threads`` connections and adds the deferred DDL."""

    def __init__(self, restore: PreparedRestore, repo: BlobSource, threads: int,
                 workdir: Path) -> None:
        self.r = restore
        self.repo = repo
        self.threads = threads
        self.workdir = workdir
        self.stop = threading.Event()
        self._local = threading.local()
        self._conns: list[Connection] = []
        self._busy: dict[int, str] = {}  # connection thread id -> "load"/"ddl" while running
        self._lock = threading.Lock()
        self.digests_checked = 0  # tables whose fed lines matched their recorded digest
        self._history = False  # the sessions write history rows (``versioning.py``)
        self._versioned = False  # some table is system-versioned: ALTERs keep its history

    def _conn(self) -> Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.r.target, database=self.r.shadow, local_infile=True,
                           doing="restoring the database")
            query(conn, LOAD_SESSION)
            self._local.unique_checks = 0
            if self._history:
                query(conn, versioning.HISTORY_SESSION)
            if self._versioned:
                query(conn, versioning.ALTER_SESSION)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _run(self, kind: str, fn: Any, *args: Any) -> Any:
        if self.stop.is_set():
            return None
        conn = self._conn()
        with self._lock:
            self._busy[conn.thread_id()] = kind
        try:
            with errors_as(self.r.target, "restoring the database"):
                return fn(conn, *args)
        finally:
            with self._lock:
                self._busy.pop(conn.thread_id(), None)

    def _load(self, conn: Connection, table: dict[str, Any], part: RowPart,
              split: SplitTable) -> Loaded:
        columns = [Column.from_json(c) for c in table["columns"]]
        checks = unique_checks(split)
        if self._local.unique_checks != checks:
            query(conn, UNIQUE_CHECKS.format(checks))
            self._local.unique_checks = checks
        crash_point("mysql.loading")
        return load_rows(conn, self.r.shadow, table["name"], columns, self.repo, part.ref,
                         self.workdir, self.r.reporter, self.stop, encoding=part.encoding)

    def _ddl(self, conn: Connection, statements: list[str]) -> None:
        """Run ``statements``; DDL on tables linked by foreign keys can deadlock in the
        server's dictionary when run in parallel, so such a statement is retried."""
        for sql in statements:
            for attempt in range(DDL_RETRIES):
                try:
                    query(conn, sql)
                    break
                except pymysql.MySQLError as e:
                    if (error_code(e) not in (ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT)
                            or attempt == DDL_RETRIES - 1 or self.stop.is_set()):
                        raise
                    time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))

    def run(self, tables: list[dict[str, Any]], splits: dict[str, SplitTable]) -> None:
        history = versioning.with_history(tables)
        self._versioned = any("system_time" in t for t in tables)
        if history:  # refused here, before any row is loaded, if the server cannot
            with errors_as(self.r.target, "restoring the database"):
                versioning.require_history_insert(self.r._conn, history)
            self._history = True
        st = _Loading(tables, splits)
        started = time.monotonic()
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="snapkeep-restore")
        try:
            self._load_all(st, pool)
            load_seconds = time.monotonic() - started
            # Foreign keys last, one table after the other: with foreign_key_checks off
            # InnoDB adds them without reading rows, and parallel foreign-key DDL
            # deadlocks in the data dictionary.
            if st.late:
                pool.submit(self._run, "ddl", self._ddl, st.late).result()
        except BaseException:
            self._stop_all(st.pending)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for conn in self._conns:
                with contextlib.suppress(pymysql.Error):
                    conn.close()
        self.r.reporter.log(
            f"loaded {sum(st.loaded.values())} rows in {st.streams} streams into "
            f"{len(tables)} tables and added the keys of {st.alter_count} tables in "
            f"{load_seconds:.1f} s on {self.threads} connections"
            + (f", then the foreign keys of {len(st.late)} tables in "
               f"{time.monotonic() - started - load_seconds:.1f} s" if st.late else "")
            + f"; the row digests of {self.digests_checked} of {len(tables)} tables match "
              f"the snapshot's")

    def _load_all(self, st: _Loading, pool: ThreadPoolExecutor) -> None:
        """Every table's parts loaded and its keys added, ``threads`` statements at a time
        (``_Loading`` says in which order); each table checked as soon as its last part
        is in."""
        for name, count in st.remaining.items():
            if count == 0:
                self._finalize(st, name)
        self._fill(st, pool)
        while st.pending:
            finished, _ = wait(list(st.pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                kind, name = st.pending.pop(fut)
                result = fut.result()
                if kind != "load":
                    continue
                st.loading.discard(name)
                st.loaded[name] += result.rows if result is not None else 0
                if result is not None:
                    st.fed[name].append(result)
                st.remaining[name] -= 1
                if st.remaining[name] == 0:
                    self._finalize(st, name)
            self._fill(st, pool)

    def _fill(self, st: _Loading, pool: ThreadPoolExecutor) -> None:
        """Start ready steps until ``threads`` run."""
        while len(st.pending) < self.threads and (step := st.next_step()) is not None:
            kind, name = step
            if kind == "ddl":
                fut = pool.submit(self._run, "ddl", self._ddl, st.ddl.pop(name))
            else:
                st.loading.add(name)
                fut = pool.submit(self._run, "load", self._load, st.tables[name],
                                  st.queues[name].pop(0), st.splits[name])
            st.pending[fut] = (kind, name)

    def _finalize(self, st: _Loading, name: str) -> None:
        """A table whose parts are all in: checked against the snapshot, then its keys and
        AUTO_INCREMENT made ready to add; its foreign keys wait for the end (``st.late``)."""
        table = st.tables[name]
        if st.loaded[name] != int(table.get("row_count", 0)):
            raise RepositoryError(
                f"table {quote_ident(name)}: {st.loaded[name]} rows loaded, the snapshot has "
                f"{table.get('row_count')}; the snapshot data or the server rejected rows")
        self._check(table, st.fed[name])
        split = st.splits[name]
        statements = [s for s in [split.alter(split.keys)] if s]
        wanted = table.get("auto_increment")
        if wanted is not None:
            statements.append(f"ALTER TABLE {quote_ident(name)} AUTO_INCREMENT = "
                              f"{int(wanted)}")
        fk_sql = split.alter(split.foreign)
        if fk_sql:
            st.late.append(fk_sql)
        st.alter_count += bool(split.keys)
        if statements:
            st.ddl[name] = statements

    def _check(self, table: dict[str, Any], loads: list[Loaded]) -> None:
        """Refuse a table whose load differs from the snapshot (before any cut-over): the
        lines fed against the recorded digest and row count, and the server's count of
        rows loaded, skipped or deleted against the lines fed. Warnings are logged."""
        q = quote_ident(table["name"])
        warnings = [w for load in loads for w in load.warnings]
        for level, code, text in warnings[:LOGGED_WARNINGS]:
            self.r.reporter.log(f"table {q}: the load said {level} {code}: {text}")
        count = sum(load.warning_count for load in loads)
        if count > LOGGED_WARNINGS:
            self.r.reporter.log(f"table {q}: {count - LOGGED_WARNINGS} more load warnings")
        fed: dict[str, Sum] = {}
        for load in loads:
            fed[load.encoding] = fed.get(load.encoding, Sum()) + load.fed
        lines = sum(s.rows for s in fed.values())
        problems = []
        if any(load.pending for load in loads):
            problems.append("a stored part ends inside a line")
        rows = sum(load.rows for load in loads)
        skipped = sum(load.skipped for load in loads)
        deleted = sum(load.deleted for load in loads)
        if rows != lines or skipped or deleted:
            problems.append(f"{lines} lines fed, the server loaded {rows} rows "
                            f"({skipped} skipped, {deleted} deleted)")
        altering = sorted({f"{code} ({text})" for _, code, text in warnings
                           if code in ALTERING_WARNINGS})
        if altering:
            problems.append("the server changed values while loading: "
                            + ", ".join(altering[:3]))
        digest = table.get("digest")
        if digest:
            if int(digest.get("rows", -1)) != int(table.get("row_count", 0)):
                problems.append(f"the digest counts {digest.get('rows')} rows, the snapshot "
                                f"{table.get('row_count')}")
            differs = mismatch(digest, fed)
            if differs:
                problems.append(differs)
        if problems:
            raise IntegrityError(
                f"table {q} of the snapshot does not restore as it was dumped: "
                f"{'; '.join(problems)}. Nothing was swapped: the live database is as it was. "
                f"Restore an earlier snapshot, or report this if they all fail")
        if digest:
            self.digests_checked += 1

    def _stop_all(self, pending: dict[Future[Any], tuple[str, str]]) -> None:
        """After a failure: stop feeding, cancel queued work, interrupt running DDL."""
        self.stop.set()
        for fut in pending:
            fut.cancel()
        with self._lock:
            running = [tid for tid, kind in self._busy.items() if kind == "ddl"]
        for tid in running:
            with contextlib.suppress(pymysql.Error):
                query(self.r._conn, f"KILL QUERY {int(tid)}")
