"""The physical restore: tables stored as pages placed into the shadow database.

For each paged table (``physical_dump.py``), on ``threads`` connections at once: the
table is created in the shadow from its recorded DDL (``restore.py`` does that for every
table), ``ALTER TABLE … DISCARD TABLESPACE`` removes its empty tablespace, its ``.ibd``
and ``.cfg`` are written from the repository into the shadow's directory (every chunk
hash-checked as it is read; a chunk of only zeros — unused pages, its id says so — is not
read but its range allocated; owner and group those of that directory, mode 0660, as the
server's own files), ``ALTER TABLE … IMPORT TABLESPACE`` adopts them (the server checks
every page and the ``.cfg`` against the table's definition), and the ``.cfg`` is
removed. The rest of the restore — the tables dumped as rows, the checks, the journal,
the swap and its rollback — is the logical restore's.

A table whose import fails fails the restore before any cut-over (the live database is
untouched and the shadow dropped); a killed restore's shadow, files placed and not yet
imported included, is dropped by the next activity like any (``cutover.cleanup_leftovers``:
the server removes a discarded table's placed files with the database).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from snapkeep.engines.mysql.connect import Connection, connect, errors_as, query, quote_ident
from snapkeep.engines.mysql.physical_env import Locality, db_file_name
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.engines.seams import BlobSource
from snapkeep.errors import IntegrityError, RepositoryError
from snapkeep.faults import crash_point
from snapkeep.progress import Reporter
from snapkeep.repository import BlobRef

IMPORT_SESSION = "SET SESSION foreign_key_checks = 0, lock_wait_timeout = 3600"


def import_tables(target: MySQLTarget, shadow: str, where: Locality, repo: BlobSource,
                  tables: list[dict[str, Any]], threads: int, reporter: Reporter) -> None:
    """Place every table of ``tables`` (created, empty, in ``shadow``) from its pages."""
    if not tables:
        return
    assert where.datadir is not None
    directory = where.datadir / db_file_name(shadow)
    if not directory.is_dir():
        raise IntegrityError(f"the shadow database's directory {directory} is not on this "
                             "machine; the server's data directory changed during the restore")
    owner = directory.stat()
    conns: list[Connection] = []
    local = threading.local()
    lock = threading.Lock()
    started = time.monotonic()
    spent = {"writing": 0.0, "importing": 0.0, "zeros": 0}  # summed over the connections

    def conn() -> Connection:
        c = getattr(local, "conn", None)
        if c is None:
            c = connect(target.with_database(shadow), doing="importing tablespaces")
            query(c, IMPORT_SESSION)
            local.conn = c
            with lock:
                conns.append(c)
        return c

    def place(t: dict[str, Any]) -> int:
        c = conn()
        name, pages = quote_ident(t["name"]), t["physical"]
        file = db_file_name(t["name"])
        with errors_as(target, f"importing the tablespace of table {t['name']}"):
            query(c, f"ALTER TABLE {name} DISCARD TABLESPACE")
            began = time.monotonic()
            try:
                size, zeros = _write(repo, BlobRef.from_json(pages["ibd"]),
                                     directory / f"{file}.ibd", owner)
                _write(repo, BlobRef.from_json(pages["cfg"]), directory / f"{file}.cfg", owner)
            except (IntegrityError, RepositoryError) as e:  # say whose pages are damaged
                kind = IntegrityError if isinstance(e, IntegrityError) else RepositoryError
                raise kind(f"the pages of table {name}: {e}") from e
            crash_point("mysql.physical.importing")
            wrote = time.monotonic()
            query(c, f"ALTER TABLE {name} IMPORT TABLESPACE")
        with lock:
            spent["writing"] += wrote - began
            spent["importing"] += time.monotonic() - wrote
            spent["zeros"] += zeros
        with contextlib.suppress(FileNotFoundError):
            (directory / f"{file}.cfg").unlink()
        reporter.advance(size)
        return size

    reporter.add_total(sum(int(t["physical"]["ibd"]["size"]) for t in tables))
    try:
        with ThreadPoolExecutor(max(1, threads), thread_name_prefix="snapkeep-import") as pool:
            order = sorted(tables, key=lambda t: -int(t["physical"]["ibd"]["size"]))
            total = sum(pool.map(place, order))
    finally:
        for c in conns:
            with contextlib.suppress(Exception):
                c.close()
    reporter.log(f"imported {len(tables)} InnoDB tables as pages ({total} bytes) into "
                 f"{quote_ident(shadow)} in {time.monotonic() - started:.1f} s (on {threads} "
                 f"connections: writing the files {spent['writing']:.1f} s, IMPORT "
                 f"TABLESPACE {spent['importing']:.1f} s, summed; {spent['zeros']} bytes of "
                 "unused pages allocated, not written)")


def _write(repo: BlobSource, ref: BlobRef, path: Path, owner: os.stat_result
           ) -> tuple[int, int]:
    """Write the blob ``ref`` to ``path``: (its size, the bytes of its chunks of zeros,
    allocated rather than written)."""
    # Through the page cache: written with O_DIRECT (the chunks are page-aligned) the
    # server's IMPORT, reading with O_DIRECT too, took twice as long (tried on the bench
    # shop at scale 14: 3.9-6.3 s summed against 2.3 s)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o660)
    try:
        if os.geteuid() == 0:
            os.fchown(fd, owner.st_uid, owner.st_gid)
        else:  # the server's group (mode 0660 lets it in) when we are a member of it
            with contextlib.suppress(PermissionError):
                os.fchown(fd, -1, owner.st_gid)
        at = zeros = 0
        with repo.open_blob(ref) as reader:
            for piece in reader.iter_sparse():
                if isinstance(piece, int):  # zeros: the range allocated, nothing copied
                    # allocated, not a hole: InnoDB writes into its pages as if they were
                    # on disk (a write into a hole on a full disk fails where the server
                    # does not expect it); unwritten extents read as zeros, no byte copied
                    os.posix_fallocate(fd, at, piece)
                    at, zeros = at + piece, zeros + piece
                else:
                    _write_all(fd, piece, at)
                    at += len(piece)
    finally:
        os.close(fd)
    return ref.size, zeros


def _write_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
