"""The physical snapshot: InnoDB tables as pages, everything else through the logical dump.

1. Which tables go as pages (``paged``): InnoDB base or system-versioned tables that are
   not partitioned (``unpaged_reason`` names why another is dumped as rows — the log
   says so). Everything else — MyISAM, Aria, MEMORY, CSV…, partitioned tables, the DDL
   of every table, views, routines, triggers, events, sequences — is the logical dump's
   (``dump.py``), which reads no rows of the paged tables.
2. Not live (``writes_held=True``, the default snapshot): this holds the writes itself —
   ``hold_writes`` on the tables stored as rows, ``FLUSH TABLES … FOR EXPORT`` on the
   paged ones (``physical_export``) — and reads the ``.ibd``/``.cfg`` files in place in
   the data directory: no copy, no prepare, no temporary disk.
   Live: ``mariadb-backup --backup --databases=DB`` copies the database's tablespaces in
   the background (hot: its backup stages are taken only at the end, while it copies the
   non-InnoDB files and the redo tail) into a private work directory, while the logical
   dump runs; then ``--prepare --export`` applies the redo and writes each table's
   ``.cfg`` beside its ``.ibd``.
3. Each ``.ibd`` is stored through a page writer (chunks cut only at page boundaries,
   ``repository/pages.py``: unchanged pages deduplicate) and its ``.cfg`` as a small
   blob, on ``threads`` threads; a work directory is removed. Live, each ``.ibd`` is
   also stored *ahead* as soon as mariadb-backup has copied it (``physical_ahead.py``,
   unreferenced, during the copy and prepare), so the pass after prepare finds the pages
   prepare left as they were stored already and only hashes them.

Consistency: one point, live or not. Not live: nothing is written during the snapshot.
Live: the logical dump's connections start their snapshots while mariadb-backup holds its
BACKUP STAGE BLOCK_COMMIT (``physical_point.py`` keeps it there meanwhile), the point its
pages are of; its binlog position is checked against mariadb-backup's (``_one_point``).
The DDL, read before that point, is checked against the pages' definitions by InnoDB
dictionary fingerprints read around the DDL read and at the point
(``ddl_fingerprint.py``): a table changed in between has its DDL read again, or, when
mariadb-backup did not copy it (its rows read at the point instead), fails the snapshot.

Temporary disk (live only): one copy of the database's InnoDB files plus the redo written
during the copy (and mariadb-backup's copy of the system tablespace, ``ibdata1``), in
``workdir`` (default: the system's temporary directory); prepare works in place.

The description is the logical dump's, format 4 (``descriptions.PHYSICAL_FORMAT``),
with ``"engine": "physical"``, ``"page_size"``, and per paged table ``"physical":
{"ibd": BlobRef, "cfg": BlobRef, "file": name, "rows": n}`` instead of rows (no
``parts``, no row digest: the restore's check is the chunks' hashes and the server's own
page checks on IMPORT; ``rows``, the live records of its clustered index told from the
pages as they are stored (``ibd_rows.py``), is what a restore drill compares; absent when
the pages' layout does not tell it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapkeep.engines.mysql import ddl_fingerprint, physical_point, schema
from snapkeep.engines.mysql import dump as logical
from snapkeep.engines.mysql.backup_lock import Server
from snapkeep.engines.mysql.connect import connect, errors_as, query, query_text, quote_ident
from snapkeep.engines.mysql.consistency import hold_writes
from snapkeep.engines.mysql.descriptions import PHYSICAL_FORMAT
from snapkeep.engines.mysql.dump_sql import DUMP_SESSION
from snapkeep.engines.mysql.encoding import Column
from snapkeep.engines.mysql.ibd_rows import LeafCounter
from snapkeep.engines.mysql.physical_ahead import StoreAhead
from snapkeep.engines.mysql.physical_env import Locality, db_file_name
from snapkeep.engines.mysql.physical_export import exported
from snapkeep.engines.mysql.physical_point import copied
from snapkeep.engines.mysql.sqlfile import option_file
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.engines.seams import PageSink
from snapkeep.errors import InsufficientSpace, ServiceUnavailable
from snapkeep.faults import crash_point, seam
from snapkeep.progress import Reporter
from snapkeep.repository import ROWS_ZSTD_LEVEL, BlobRef

DOING = "taking a physical snapshot"
WORK_PREFIX = "snapkeep-physical-"
PAGED_KINDS = frozenset(["BASE TABLE", "SYSTEM VERSIONED"])
HELD_BY = "mariadb-backup's BACKUP STAGE BLOCK_COMMIT"
# the point's fingerprint reads take no metadata lock; should one wait anyway, commits
# are held meanwhile: give up soon
POINT_LOCK_WAIT = "SET SESSION lock_wait_timeout = 5, innodb_lock_wait_timeout = 5"
# zstd level of pages: compressing was the physical snapshot's whole cost (160 MB of pages:
# 8.4 s at level 5, 4.4 s at 3, 1.6 s at 1 on one core of the bench machine), and
# InnoDB pages (half-empty, repetitive headers) still shrink well at level 1
PAGES_ZSTD_LEVEL = 1
FULL = 1 << 20  # bytes left on the work directory's disk after a failure: it was full


def unpaged_reason(kind: str, engine: str | None, options: str, fulltext: bool = False
                   ) -> str | None:
    """Why a table is not stored as pages (None: it is)."""
    if kind not in PAGED_KINDS:
        return f"a {kind.lower()}"
    if (engine or "").lower() != "innodb":
        return f"engine {engine}"
    if "partitioned" in options.lower():
        return "partitioned (MariaDB imports a partitioned table's tablespaces one "\
               "partition at a time only from 11.4)"
    if fulltext:  # its index lives in auxiliary tablespaces IMPORT does not adopt (10.11)
        return "a FULLTEXT index, whose auxiliary tables IMPORT TABLESPACE does not take"
    return None


def paged(target: MySQLTarget, reporter: Reporter) -> dict[str, str]:
    """The tables stored as pages → their file name in the database directory."""
    conn = connect(target, doing=DOING)
    try:
        with errors_as(target, DOING):
            rows = query_text(conn, "SELECT TABLE_NAME, TABLE_TYPE, ENGINE, CREATE_OPTIONS "
                                    "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                              (target.database,))
            files = query_text(conn, "SELECT NAME FROM information_schema.INNODB_SYS_TABLES "
                                     "WHERE NAME LIKE %s",
                               (db_file_name(target.database).replace("_", "\\_") + "/%",))
            fulltext = {str(n) for (n,) in query_text(
                conn, "SELECT DISTINCT TABLE_NAME FROM information_schema.STATISTICS WHERE "
                      "TABLE_SCHEMA = %s AND INDEX_TYPE = 'FULLTEXT'", (target.database,))}
    finally:
        conn.close()
    on_disk = {str(n).split("/", 1)[1] for (n,) in files}
    out: dict[str, str] = {}
    for name, kind, engine, options in rows:
        why = unpaged_reason(str(kind), engine, str(options or ""), str(name) in fulltext)
        file = db_file_name(str(name))
        if why is None and file not in on_disk:
            why = "its tablespace file is not where expected"
        if why is None:
            out[str(name)] = file
        elif (engine or "").lower() == "innodb":
            reporter.log(f"table {quote_ident(str(name))}: dumped as rows, not pages ({why})")
    return out


@dataclass
class _RowsOfTheRest(logical._Dump):
    """The logical dump, reading no rows of the tables stored as pages (``files``: name →
    file name), its snapshots started while ``paired`` (mariadb-backup) holds
    BLOCK_COMMIT (``physical_point.py``)."""

    files: dict[str, str] = field(default_factory=dict)
    paired: physical_point.Backup | None = None
    db_dir: Path = field(default_factory=Path)  # mariadb-backup's copy of the database
    frm_dir: Path | None = None  # the database's directory in the live data directory
    late: frozenset[str] = frozenset()  # paged tables mariadb-backup did not copy: as rows
    # InnoDB dictionary fingerprints by name: around the DDL read (None: it changed during
    # the read) and at the point (None: no such table there)
    read_at: dict[str, str | None] = field(default_factory=dict, init=False)
    at_point: dict[str, str | None] = field(default_factory=dict, init=False)
    _columns: dict[str, list[Any]] = field(default_factory=dict, init=False)

    def _fingerprints(self, conn: Any) -> dict[str, str | None]:
        fps = ddl_fingerprint.fingerprints(conn, db_file_name(self.target.database),
                                           self.files.values(), self.frm_dir)
        return {name: fps.get(file) for name, file in self.files.items()}

    def _tables(self, listed: list[tuple[Any, ...]], server: Server) -> list[dict[str, Any]]:
        if self.paired is None:  # not live: the paged tables' DDL is held (FOR EXPORT)
            return super()._tables(listed, server)
        before = self._fingerprints(self.conn)
        tables = super()._tables(listed, server)
        after = self._fingerprints(self.conn)
        self.read_at = {n: fp if before[n] == fp else None for n, fp in after.items()}
        seam("mysql.physical.ddl_read")
        return tables

    def ddl_to_check(self) -> dict[str, str]:
        # the paged tables, late ones too, by InnoDB dictionary fingerprints at the point
        return {n: c for n, c in self.ddl_read.items() if n not in self.files}

    def _table(self, name: str, kind: str, engine: str | None, auto_inc: int | None,
               columns: list[Column], pk: list[str]) -> dict[str, Any]:
        t = super()._table(name, kind, engine, auto_inc, columns, pk)
        if name in self.files:
            self._columns[name] = t["columns"]
            t["columns"] = []  # its DDL only; its rows travel as pages
        return t

    def _start(self, server: Any, tables: list[dict[str, Any]], estimates: dict[str, int]
               ) -> Any:
        if self.paired is None:
            return super()._start(server, tables, estimates)
        watch = connect(self.target, doing=DOING)  # opened before commits are held
        try:
            query(watch, POINT_LOCK_WAIT)
            return self._start_at_point(watch, server, tables, estimates)
        finally:
            watch.close()

    def _start_at_point(self, watch: Any, server: Any, tables: list[dict[str, Any]],
                        estimates: dict[str, int]) -> Any:
        assert self.paired is not None
        with self.paired.hold(physical_point.COMMITS_BLOCKED):
            started = time.monotonic()
            self.at_point = self._fingerprints(watch)  # no DDL commits while it is held
            seam("mysql.physical.point")
            late = set()
            for t in tables:
                name = t["name"]
                if name in self.files and not copied(self.db_dir, self.files[name]):
                    # dumped as rows at this same point instead: in the definition read
                    # before it, so that must still be the table's
                    if ddl_fingerprint.changed({name: self.files[name]}, self.read_at,
                                               self.at_point):
                        raise schema.DDLChanged(name)
                    t["columns"] = self._columns.get(name, [])
                    late.add(name)
                    self.reporter.log(
                        f"table {quote_ident(name)}: dumped as rows, not pages "
                        "(mariadb-backup did not copy its tablespace, imported since the "
                        "server's last checkpoint)")
            self.late = frozenset(late)
            self.commits_held_by = HELD_BY
            crash_point("mysql.physical.paused")  # killed with mariadb-backup stopped
            out = super()._start(server, tables, estimates)
            self.reporter.log(f"mariadb-backup kept at its BLOCK_COMMIT point for "
                              f"{time.monotonic() - started:.2f} s while the logical dump "
                              "started there")
            return out


def dump_physical(target: MySQLTarget, repo: PageSink, reporter: Reporter, where: Locality, *,
                  threads: int | None = None, zstd_level: int = ROWS_ZSTD_LEVEL,
                  writes_held: bool = False, workdir: Path | None = None) -> dict[str, Any]:
    """Snapshot ``target``'s database physically (module docstring); its description."""
    assert where.tool is not None and where.datadir is not None
    tables = paged(target, reporter)
    # the pages are hashed, compressed and sealed on as many threads as the rows would be
    # (one thread stored 1.4 GiB of tablespaces at 120 MB/s, half the machine)
    threads = max(1, threads or os.cpu_count() or 1)

    rest = _RowsOfTheRest(target, repo, logical.SafeReporter(reporter), threads,
                          logical.default_format(), zstd_level, True, writes_held,
                          files=dict(tables))
    if writes_held:  # read in place, the paged tables flushed for export (physical_export)
        with hold_writes(target, reporter, skip=tables), \
                exported(target, list(tables), reporter):
            crash_point("mysql.physical.exported")
            description = _dump_rest(target, rest)
            stored = _store(repo, where.datadir / db_file_name(target.database), tables,
                            description, where.page_size, zstd_level, threads, reporter)
    else:
        work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=workdir))
        db_dir = _backup_dir(work) / db_file_name(target.database)
        ahead = StoreAhead(repo, db_dir, dict(tables), where.page_size, PAGES_ZSTD_LEVEL,
                           threads, reporter)
        try:
            try:
                description = _live(target, where, work, tables, threads, reporter, rest,
                                    ahead)
            except (OSError, ServiceUnavailable) as e:
                if not _disk_full(e, work):
                    raise
                raise InsufficientSpace(_full_disk_line(target, where, work, e)) from e
            finally:
                ahead.stop()
            stored = _store(repo, db_dir, tables, description, where.page_size, zstd_level,
                            threads, reporter)
            ahead.report([BlobRef.from_json(t["physical"]["ibd"])
                          for t in description["tables"] if "physical" in t])
        finally:
            shutil.rmtree(work, ignore_errors=True)
    description["format"] = PHYSICAL_FORMAT
    description["engine"] = "physical"
    description["page_size"] = where.page_size
    description["size_bytes"] = int(description.get("size_bytes", 0)) + stored
    return description


def _dump_rest(target: MySQLTarget, rest: _RowsOfTheRest) -> dict[str, Any]:
    try:
        with errors_as(target, DOING):
            return rest.run()
    finally:
        rest.close()


def _live(target: MySQLTarget, where: Locality, work: Path, tables: dict[str, str],
          threads: int, reporter: Reporter, rest: _RowsOfTheRest, ahead: StoreAhead
          ) -> dict[str, Any]:
    """mariadb-backup's copy beside the logical dump ``rest``, one point (module
    docstring), prepared in ``work``/backup (its files stored ``ahead`` meanwhile); the
    description. ``tables`` loses those that went as rows."""
    assert where.tool is not None and where.datadir is not None
    backup = _backup_dir(work)
    db_dir = backup / db_file_name(target.database)
    started = time.monotonic()
    paired = _start_backup(target, where.tool, work, backup, threads, ahead.line) \
        if tables else None
    try:
        rest.paired, rest.db_dir = paired, db_dir
        rest.frm_dir = where.datadir / db_file_name(target.database)
        description = _dump_rest(target, rest)
        if paired is not None:
            paired.finish()
    finally:
        if paired is not None:
            paired.close()
    described = {t["name"] for t in description["tables"]}
    for name in list(tables):
        if name in rest.late or name not in described:  # as rows, or dropped meanwhile
            del tables[name]
    seam("mysql.physical.finished")
    _settle_ddl(target, description, tables, rest)
    if tables:
        crash_point("mysql.physical.prepare")
        _run([where.tool, "--prepare", "--export", f"--target-dir={backup}"], target,
             "mariadb-backup --prepare --export")
        ahead.stop()
        reporter.log(f"mariadb-backup copied and prepared {target.database} in "
                     f"{time.monotonic() - started:.1f} s ({_du(backup)} bytes of work "
                     "files)")
    crash_point("mysql.physical.backed_up")
    _one_point(description, physical_point.binlog_info(backup) if tables else None, reporter)
    return description


def _backup_dir(work: Path) -> Path:
    """Where mariadb-backup copies and prepares, in the work directory."""
    return work / "backup"


def _settle_ddl(target: MySQLTarget, description: dict[str, Any], tables: dict[str, str],
                rest: _RowsOfTheRest) -> None:
    """The paged tables whose definition changed between the DDL read and the point: their
    DDL read again, now mariadb-backup's stages are released (``ddl_fingerprint``)."""
    changed = ddl_fingerprint.changed(tables, rest.read_at, rest.at_point)
    if not changed:
        return
    conn = connect(target, raw=True, doing=DOING)
    try:
        with errors_as(target, DOING):
            query(conn, DUMP_SESSION)
            ddl_fingerprint.settle(conn, target.database, db_file_name(target.database),
                                   description, {n: tables[n] for n in changed},
                                   rest.at_point, rest.reporter, rest.frm_dir)
    finally:
        conn.close()


def _start_backup(target: MySQLTarget, tool: str, work: Path, backup: Path,
                  threads: int | None, on_line: Callable[[str], None]
                  ) -> physical_point.Backup:
    login = option_file(work, target)
    return physical_point.Backup(
        [tool, f"--defaults-extra-file={login}", "--backup", f"--databases={target.database}",
         f"--target-dir={backup}", f"--parallel={max(1, threads or 1)}"],
        "mariadb-backup --backup", target.describe(), on_line)


def _one_point(description: dict[str, Any], pages: dict[str, Any] | None,
               reporter: Reporter) -> None:
    """Check the logical dump's binlog position against mariadb-backup's: one point, so
    equal. Should they differ, the snapshot is no base for a point-in-time restore (its
    position is dropped, and the log says why) rather than a wrong one."""
    if pages is None:
        return
    description["pages_binlog"] = pages
    rows = description.get("binlog")
    if rows is None:
        return
    if (str(rows["file"]), int(rows["position"])) != (pages["file"], pages["position"]):
        del description["binlog"]
        reporter.log(f"warning: the InnoDB pages are of binlog position {pages['file']}:"
                     f"{pages['position']}, the other tables of {rows['file']}:"
                     f"{rows['position']}: this snapshot cannot be the base of a "
                     "point-in-time restore")


def _disk_full(e: BaseException, work: Path) -> bool:
    """Whether ``e`` (mariadb-backup's failure, or our own write's) is the work
    directory's disk being full: ENOSPC said, or next to nothing left there."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return True
    said = str(e).lower()
    if any(x in said for x in ("no space left", "errno: 28", "errcode: 28", "error 28",
                               "disk full")):
        return True
    with contextlib.suppress(OSError):
        return shutil.disk_usage(work).free < FULL
    return False


def _full_disk_line(target: MySQLTarget, where: Locality, work: Path,
                    e: BaseException) -> str:
    """One line: what failed, that the disk is full, what it needs, what to do."""
    what = str(e).split(" of ", 1)[0] if isinstance(e, ServiceUnavailable) else \
        "writing mariadb-backup's work files"
    assert where.datadir is not None
    need = _du(where.datadir / db_file_name(target.database)) + sum(
        p.stat().st_size for p in where.datadir.glob("ibdata*") if p.is_file())
    free = 0
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(work).free + _du(work)  # what the cleanup gives back
    return (f"{what} of {target.describe()} failed: the disk of the work directory "
            f"{work.parent} is full ({free >> 20} MiB free there without this backup's "
            f"files; it needs about {need >> 20} MiB: a copy of the database's files and "
            "the system tablespace, plus the redo written meanwhile). Free space there or "
            'mount a larger disk on it, or set engine = "logical" for this environment')


def _run(argv: list[str], target: MySQLTarget, what: str) -> None:
    res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:
        tail = [ln for ln in res.stderr.splitlines() if ln.strip()][-3:]
        raise ServiceUnavailable(f"{what} of {target.describe()} failed (exit "
                                 f"{res.returncode}): {' | '.join(tail)}")


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _store(repo: PageSink, db_dir: Path, tables: dict[str, str], description: dict[str, Any],
           page_size: int, level: int, threads: int, reporter: Reporter) -> int:
    """Each paged table's .ibd and .cfg into blobs, on ``threads`` threads; bytes stored."""
    by_name = {t["name"]: t for t in description["tables"]}

    def store(name: str) -> int:
        file = tables[name]
        ibd, cfg = db_dir / f"{file}.ibd", db_dir / f"{file}.cfg"
        if not ibd.is_file() or not cfg.is_file():
            raise ServiceUnavailable(f"mariadb-backup left no {ibd.name}/{cfg.name} for table "
                                     f"{name}; was it dropped during the snapshot? Try again")
        counter = LeafCounter(page_size)  # the rows, told from the pages as they pass
        with open(ibd, "rb", buffering=0) as f:
            w = repo.page_writer(page_size, PAGES_ZSTD_LEVEL)

            def read(room: memoryview) -> int:  # straight into the chunker's window
                n = f.readinto(room) or 0
                counter.feed(room[:n])
                return n

            while w.write_from(read):
                pass
            ibd_ref = w.close()
        cw = repo.blob_writer(level)
        cw.write(cfg.read_bytes())
        cfg_ref = cw.close()
        t = by_name[name]
        for key in ("digest", "row_count"):
            t.pop(key, None)
        t["parts"] = []
        t["physical"] = {"file": file, "ibd": ibd_ref.to_json(), "cfg": cfg_ref.to_json()}
        rows = counter.rows
        if rows is not None:  # for restore drills (verify.py); None: not told by the pages
            t["physical"]["rows"] = rows
        else:
            reporter.log(f"table {quote_ident(name)}: its row count could not be told from "
                         f"its pages ({counter.failed or 'layout not understood'}); restore "
                         "drills cannot verify it")
        return ibd_ref.size + cfg_ref.size

    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="snapkeep-pages") as pool:
        sizes = list(pool.map(store, sorted(tables, key=lambda n: -_size(db_dir, tables[n]))))
    total = sum(sizes)
    reporter.log(f"stored {len(tables)} InnoDB tables as pages ({total} bytes)")
    return total


def _size(db_dir: Path, file: str) -> int:
    with contextlib.suppress(OSError):
        return (db_dir / f"{file}.ibd").stat().st_size
    return 0
