"""One point in time for every connection of a dump (DESIGN.md §4, ``dump.py`` step 2).

A non-live snapshot holds the database's writes for the whole dump (``hold_writes``,
taken by the caller, who tells the dump so with ``writes_held=True``): nothing can change,
so no lock is needed and every table is consistent. A live one takes the server's
lightest commit-blocking lock (``backup_lock.py``) just while the workers start their
``START TRANSACTION WITH CONSISTENT SNAPSHOT`` and read the small non-transactional
tables (``NONTX_UNDER_LOCK_BYTES`` in all); without the privilege for it, the dump runs
on one connection.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

import pymysql

from snapkeep.engines.mysql import schema
from snapkeep.engines.mysql.backup_lock import LOCK_SESSION, LockPlan, Server, plan_for
from snapkeep.engines.mysql.connect import (
    Connection,
    connect,
    errors_as,
    lacks_privilege,
    query,
    quote_ident,
)
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.engines.mysql.workers import Part, WorkerPool
from snapkeep.progress import Reporter

# Non-transactional tables read while writes are held, at most this many bytes in all.
NONTX_UNDER_LOCK_BYTES = 16 << 20
TRANSACTIONAL_ENGINES = frozenset(["innodb", "xtradb", "rocksdb", "tokudb"])


@contextmanager
def hold_writes(target: MySQLTarget, reporter: Reporter,
                skip: Collection[str] = ()) -> Iterator[None]:
    """Block writes to the database's base tables (but ``skip``, which the caller locks
    itself) for the duration of the block.

    Uses ``FLUSH TABLES … WITH READ LOCK`` on a separate connection (``LOCK TABLES …
    READ`` when the user lacks RELOAD); the lock is released on exit, also on errors,
    and the time writes were held is logged. A dump inside the block is told so
    (``dump_database(writes_held=True)``) and takes no lock of its own.
    """
    conn = connect(target, doing="holding writes")
    try:
        with errors_as(target, "holding writes"):
            tables = [n for n, kind, _, _ in schema.list_tables(conn, target.database)
                      if schema.holds_rows(kind) and n not in skip]
        if not tables:
            yield
            return
        names = ", ".join(quote_ident(t) for t in tables)
        with errors_as(target, "holding writes"):
            try:
                query(conn, f"FLUSH TABLES {names} WITH READ LOCK")
            except pymysql.MySQLError as e:
                if not lacks_privilege(e):
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


def nontransactional(tables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in tables if (t["engine"] or "").lower() not in TRANSACTIONAL_ENGINES]


def read_under_lock(nontx: list[dict[str, Any]], estimates: dict[str, int]
                    ) -> list[dict[str, Any]]:
    """The non-transactional tables read while writes are held: the smallest first, up to
    ``NONTX_UNDER_LOCK_BYTES`` in all."""
    chosen: list[dict[str, Any]] = []
    budget = NONTX_UNDER_LOCK_BYTES
    for t in sorted(nontx, key=lambda t: estimates[t["name"]]):
        if estimates[t["name"]] <= budget:
            chosen.append(t)
            budget -= estimates[t["name"]]
    return chosen


def log_outside(nontx: list[dict[str, Any]], under_lock: list[dict[str, Any]],
                estimates: dict[str, int], lock_name: str | None, reporter: Reporter) -> None:
    """Name each non-transactional table read outside the consistent point, and why."""
    for t in nontx:
        why = ("no backup lock" if lock_name is None else
               f"{estimates[t['name']] >> 20} MiB, over the {NONTX_UNDER_LOCK_BYTES >> 20} "
               f"MiB read while writes are held" if t not in under_lock else "")
        if why:
            reporter.log(f"table {quote_ident(t['name'])} is {t['engine']}: read "
                         f"outside the consistent point ({why})")


def consistent_point(target: MySQLTarget, pool: WorkerPool, server: Server,
                     nontx_parts: list[Part], reporter: Reporter, *, writes_held: bool,
                     at_point: Callable[[bool], None] | None = None,
                     held_by: str | None = None) -> tuple[float, str | None]:
    """Start every worker's snapshot at one point; dump ``nontx_parts`` there.

    Returns (seconds writes were held, lock used or None). ``writes_held``: the caller
    holds the database's writes (``hold_writes``) for the whole dump. ``at_point`` is
    called once the snapshots have started, while commits are still blocked if they are
    (its argument: whether they are), e.g. to read the binlog position. ``held_by``: a
    lock another process holds meanwhile that blocks every commit (and every write to a
    non-transactional table), e.g. mariadb-backup's BACKUP STAGE BLOCK_COMMIT; returned as
    the lock used.
    """
    mark = at_point or (lambda _blocked: None)
    if writes_held or held_by:  # nothing can change; every table is consistent
        _start_snapshots(pool)
        mark(True)
        pool.run_now(nontx_parts)
        reporter.log("writes are held for the whole dump: no backup lock needed"
                     if held_by is None else
                     f"the snapshots started while {held_by} blocked every commit"
                     + (f"; {len(nontx_parts)} non-transactional table(s) read there"
                        if nontx_parts else ""))
        return 0.0, held_by
    plan = plan_for(server)
    lock_conn = connect(target, doing="taking the backup lock")
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
            if not lacks_privilege(e):
                raise
            _release(lock_conn, plan)
            _single_connection(pool, plan, e, reporter)
            mark(False)
            pool.run_now(nontx_parts)
            return 0.0, None
        _start_snapshots(pool)
        mark(True)
        pool.run_now(nontx_parts)
    finally:
        if acquired:
            _release(lock_conn, plan)
            held = time.monotonic() - started
        lock_conn.close()
    reporter.log(f"writes held for {held:.3f} s ({plan.name}) while "
                 f"{len(pool.readers)} connection(s) started their snapshot"
                 + (f" and {len(nontx_parts)} non-transactional table(s) were read"
                    if nontx_parts else ""))
    return held, plan.name


def _start_snapshots(pool: WorkerPool) -> None:
    for reader in pool.readers:
        reader.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")


def _single_connection(pool: WorkerPool, plan: LockPlan, e: pymysql.MySQLError,
                       reporter: Reporter) -> None:
    for reader in pool.readers[1:]:
        reader.close()
    del pool.readers[1:]
    reporter.log(f"warning: no privilege for {plan.name} ({e.args[-1]}): dumping on "
                 f"one connection, without a lock")
    _start_snapshots(pool)


def _release(conn: Connection, plan: LockPlan) -> None:
    for sql in plan.release:
        # not held (e.g. acquiring failed half-way): closing the connection releases anyway
        with contextlib.suppress(pymysql.MySQLError):
            query(conn, sql)
