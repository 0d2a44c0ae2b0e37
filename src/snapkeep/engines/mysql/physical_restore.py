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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
    started = time.monotonic()
    order = sorted(tables, key=lambda t: -int(t["physical"]["ibd"]["size"]))
    reporter.add_total(sum(int(t["physical"]["ibd"]["size"]) for t in order))
    placing = _Placing(target, shadow, directory, repo, max(1, threads), reporter)
    try:
        placing.run([_Table.of(t, directory) for t in order])
    finally:
        placing.close()
    spent = placing.spent
    reporter.log(f"imported {len(tables)} InnoDB tables as pages ({placing.bytes} bytes) into "
                 f"{quote_ident(shadow)} in {time.monotonic() - started:.1f} s (on {threads} "
                 f"connections: writing the files {spent['writing']:.1f} s, IMPORT "
                 f"TABLESPACE {spent['importing']:.1f} s, summed; {placing.zeros} bytes of "
                 "unused pages allocated, not written)")


@dataclass
class _Table:
    name: str  # as the server has it
    ibd: BlobRef
    cfg: BlobRef
    path: Path  # the .ibd in the shadow's directory; the .cfg beside it

    @classmethod
    def of(cls, t: dict[str, Any], directory: Path) -> _Table:
        return cls(t["name"], BlobRef.from_json(t["physical"]["ibd"]),
                   BlobRef.from_json(t["physical"]["cfg"]),
                   directory / f"{db_file_name(t['name'])}.ibd")

    @property
    def cfg_path(self) -> Path:
        return self.path.with_suffix(".cfg")


class _Placing:
    """The tables through two pools: ``threads`` connections (``DISCARD``, ``IMPORT``) and
    ``threads`` writers. A table's file is written once its tablespace is discarded, its
    ``IMPORT`` handed to a connection once the file is written, and the writer goes on
    with the next table: the writers keep the CPU busy while the server imports (which
    waits on its disk for much of it). One writer per file: writers sharing a file's
    pieces were slower (the kernel copies into one file under its inode's lock). The
    first failure stops what has not started; ``close`` waits for what has."""

    def __init__(self, target: MySQLTarget, shadow: str, directory: Path, repo: BlobSource,
                 threads: int, reporter: Reporter) -> None:
        self.target, self.shadow, self.repo, self.reporter = target, shadow, repo, reporter
        self.owner = directory.stat()
        self.servers = ThreadPoolExecutor(threads, thread_name_prefix="snapkeep-import")
        self.writers = ThreadPoolExecutor(threads, thread_name_prefix="snapkeep-write")
        self.conns: list[Connection] = []
        self.local = threading.local()
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.failure: BaseException | None = None
        self.left = 0  # tables not imported yet
        self.spent = {"writing": 0.0, "importing": 0.0}  # summed over the threads
        self.bytes = self.zeros = 0

    def run(self, tables: list[_Table]) -> None:
        self.left = len(tables)
        for t in tables:
            self._submit(self.servers, self._discard, t)
        self.finished.wait()
        if self.failure is not None:
            raise self.failure

    def close(self) -> None:
        with self.lock:
            if self.failure is None and not self.finished.is_set():
                self.failure = InterruptedError("the restore was interrupted")
        self.writers.shutdown(wait=True, cancel_futures=True)
        self.servers.shutdown(wait=True, cancel_futures=True)
        for c in self.conns:
            with contextlib.suppress(Exception):
                c.close()

    def _submit(self, pool: ThreadPoolExecutor, step: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # shut down after a failure: nothing new
            pool.submit(self._guarded, step, *args)

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        if self.failure is not None:
            return
        try:
            step(*args)
        except BaseException as e:  # noqa: BLE001 - raised in the caller's thread by run()
            with self.lock:
                if self.failure is None:
                    self.failure = e
            self.finished.set()

    def _conn(self) -> Connection:
        c: Connection | None = getattr(self.local, "conn", None)
        if c is None:
            c = connect(self.target.with_database(self.shadow), doing="importing tablespaces")
            query(c, IMPORT_SESSION)
            self.local.conn = c
            with self.lock:
                self.conns.append(c)
        return c

    def _discard(self, t: _Table) -> None:
        with errors_as(self.target, f"importing the tablespace of table {t.name}"):
            query(self._conn(), f"ALTER TABLE {quote_ident(t.name)} DISCARD TABLESPACE")
        with self._saying_whose(t):
            os.close(_create(t.path, self.owner))
            fd = _create(t.cfg_path, self.owner)
            try:
                _fill(fd, self.repo, t.cfg, 0)
            finally:
                os.close(fd)
        self._submit(self.writers, self._write, t)

    def _write(self, t: _Table) -> None:
        began = time.monotonic()
        with self._saying_whose(t):
            fd = os.open(t.path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                zeros = _fill(fd, self.repo, t.ibd, 0)
            finally:
                os.close(fd)
        with self.lock:
            self.spent["writing"] += time.monotonic() - began
            self.bytes, self.zeros = self.bytes + t.ibd.size, self.zeros + zeros
        self.reporter.advance(t.ibd.size)
        self._submit(self.servers, self._import, t)

    def _import(self, t: _Table) -> None:
        crash_point("mysql.physical.importing")
        began = time.monotonic()
        with errors_as(self.target, f"importing the tablespace of table {t.name}"):
            query(self._conn(), f"ALTER TABLE {quote_ident(t.name)} IMPORT TABLESPACE")
        with contextlib.suppress(FileNotFoundError):
            t.cfg_path.unlink()
        with self.lock:
            self.spent["importing"] += time.monotonic() - began
            self.left -= 1
            if self.left == 0:
                self.finished.set()

    @staticmethod
    @contextlib.contextmanager
    def _saying_whose(t: _Table) -> Iterator[None]:
        try:
            yield
        except (IntegrityError, RepositoryError) as e:  # say whose pages are damaged
            kind = IntegrityError if isinstance(e, IntegrityError) else RepositoryError
            raise kind(f"the pages of table {quote_ident(t.name)}: {e}") from e


def _create(path: Path, owner: os.stat_result) -> int:
    """``path`` created empty, owned as the server's own files; its descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o660)
    try:
        if os.geteuid() == 0:
            os.fchown(fd, owner.st_uid, owner.st_gid)
        else:  # the server's group (mode 0660 lets it in) when we are a member of it
            with contextlib.suppress(PermissionError):
                os.fchown(fd, -1, owner.st_gid)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fill(fd: int, repo: BlobSource, ref: BlobRef, at: int) -> int:
    """The blob ``ref`` written at ``at``; the bytes of its chunks of zeros, allocated
    rather than written."""
    # Through the page cache: written with O_DIRECT (the chunks are page-aligned) the
    # server's IMPORT, reading with O_DIRECT too, took twice as long (tried on the bench
    # shop at scale 14: 3.9-6.3 s summed against 2.3 s)
    zeros = 0
    with repo.open_blob(ref) as reader:
        for piece in reader.iter_sparse():
            if isinstance(piece, int):  # zeros: the range allocated, nothing copied
                # allocated, not a hole: InnoDB writes into its pages as if they were on
                # disk (a write into a hole on a full disk fails where the server does
                # not expect it); unwritten extents read as zeros, no byte copied
                os.posix_fallocate(fd, at, piece)
                at, zeros = at + piece, zeros + piece
            else:
                _write_all(fd, piece, at)
                at += len(piece)
    return zeros


def _write_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
