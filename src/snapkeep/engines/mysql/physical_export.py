"""The tablespaces of a snapshot with writes held, read in place: no copy, no prepare.

A snapshot that is not live holds the database's writes for its whole length anyway, so
its InnoDB tables need no hot copy: ``FLUSH TABLES … FOR EXPORT`` (the server's own
transportable-tablespace step) waits for their transactions, writes their changes into
their ``.ibd`` files, stops purge on them, writes a ``.cfg`` beside each and keeps them
read-locked until ``UNLOCK TABLES``. Meanwhile the files in the data directory are a
consistent export — what ``mariadb-backup --prepare --export`` would have made of a copy
— and are read straight into the repository. ``FOR EXPORT`` conflicts with the read lock
``hold_writes`` takes, so that one is taken on the other tables only (``skip``); a
transaction waiting on both sets meets the server's metadata-lock deadlock detection,
not a hang (docs/physical.md, "A physical snapshot").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from snapkeep.engines.mysql.connect import connect, errors_as, query, quote_ident
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.progress import Reporter

DOING = "flushing the InnoDB tables for export"


@contextmanager
def exported(target: MySQLTarget, tables: list[str], reporter: Reporter) -> Iterator[None]:
    """``tables`` quiesced and read-locked, their ``.ibd``/``.cfg`` files final, for the
    duration of the block (the ``.cfg`` files go when it ends)."""
    if not tables:
        yield
        return
    conn = connect(target, doing=DOING)
    try:
        names = ", ".join(quote_ident(t) for t in sorted(tables))
        with errors_as(target, DOING):
            query(conn, f"FLUSH TABLES {names} FOR EXPORT")
        started = time.monotonic()
        try:
            yield
        finally:
            with errors_as(target, DOING):
                query(conn, "UNLOCK TABLES")
            reporter.log(f"{len(tables)} InnoDB tables flushed for export and read in place; "
                         f"their writes held for {time.monotonic() - started:.1f} s")
    finally:
        conn.close()
