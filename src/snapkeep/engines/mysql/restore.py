"""Restoring into a shadow database, then swapping it in with one atomic RENAME TABLE.

``prepare_restore`` builds every table of the snapshot in the shadow database; the live
database is not touched:

1. the sequences are created first (a column's ``DEFAULT nextval(seq)`` needs its
   sequence), then each table from its saved statement without the secondary keys and
   foreign keys that can wait (``ddl.py``). ``SHOW CREATE TABLE`` prints such a default
   qualified with the snapshot's database (``nextval(`db`.`seq`)``); in the shadow it
   names the shadow (``ddl.requalify``);
2. rows are loaded by ``threads`` connections at once (``foreign_key_checks`` off;
   ``unique_checks`` off but for InnoDB, see ``shadow_load.UNIQUE_CHECKS``), one ``LOAD
   DATA LOCAL INFILE`` stream per part of a table (format 2 descriptions have several
   contiguous primary-key ranges per table; format 1 one ``rows`` blob), each fed from
   the repository through a pipe; tables load in parallel, the parts of one table one
   after the other, the table with the most work left first (``shadow_load.py``);
3. as soon as a table's parts are in, one ``ALTER TABLE … ADD …, ADD …`` adds its keys
   back (and its AUTO_INCREMENT counter), tables in parallel; once every table is
   complete, one ``ALTER TABLE … ADD CONSTRAINT …, …`` per table adds its foreign keys,
   one table after the other (with ``foreign_key_checks`` off InnoDB adds them without
   reading rows, and foreign-key DDL run in parallel deadlocks in its dictionary).

``PreparedRestore.swap`` is the cut-over, from whatever state the live database is in.
It first writes the journal (``journal.py``) into the server, creates the live database
if it is missing (dropped, or a scratch copy; with the snapshot's charset, collation and
comment), then drops the live triggers (a table with triggers cannot move to another
database), and in a single ``RENAME TABLE`` renames the live views aside within the live
database (``__skaside_<tag>_<n>``: a view cannot change database, and one may hold the
name of a snapshot's table), moves the live tables and sequences to the *old* database
and the shadow's into the live one. Then it re-points the restored tables' qualified
self-references at the live database (``RENAME TABLE`` keeps a default's text; an
instant ``MODIFY COLUMN``) and replaces routines, views (with a qualified
``db.f()`` naming the live database), triggers (after the data, so they do not fire
on it) and events — but the views, routines and events identical on both sides, which
stay in place (``cutover.replaced_objects``; the whole plan: ``swap_plan.py``). Before
the shadow is built,
``privileges.check`` refuses a restore whose cut-over or rollback needs a privilege the
user lacks (a rollback creates the previous triggers, routines and events again).
``finish`` drops what was kept (the old database, the views renamed
aside); ``rollback`` puts it back (the aside views renamed back, so even a view whose
tables were gone returns exactly).

Crash behaviour (the process killed at any point; ``cleanup_leftovers`` runs before the
next restore): the ``RENAME TABLE`` is the commit point.

- killed before the swap (loading): the live database was never touched; the shadow is
  dropped;
- killed in the swap before the RENAME: the previous triggers are recreated from the
  journal — the live database is entirely the old one;
- killed after the RENAME (while the defaults are re-pointed or the objects replaced):
  both are (re)done from the journal — the live database is entirely the new one (the
  previous tables in the old database and the previous views renamed aside are then
  dropped);
- killed during ``rollback``: the rollback is completed — entirely old.

The tests kill a restore at exact points through ``snapkeep.faults.crash_point``
(``$SNAPKEEP_CRASH_AT``), an explicit test-only seam inert unless set: ``mysql.loading``
(a stream starts loading), ``mysql.journal-written``, ``mysql.triggers-dropped`` (before
the RENAME), ``mysql.after-rename`` (right after it), ``mysql.defaults-repointed`` (the
restored defaults point at the live database, no object replaced yet),
``mysql.objects-half`` (the
snapshot's routines and views created, its triggers not yet), ``mysql.rollback-renamed``
(a rollback's reverse RENAME done).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pymysql

from snapkeep.engines.mysql import journal, physical_env, physical_restore, scope
from snapkeep.engines.mysql import objects as objs
from snapkeep.engines.mysql.connect import Connection, connect, errors_as, query, quote_ident
from snapkeep.engines.mysql.cutover import (
    create_db_sql,
    drop_aside,
    drop_db,
    forward_pairs,
    put_triggers_back,
    rename_tables,
    roll_back,
    roll_forward,
    settle,
    was_renamed,
)
from snapkeep.engines.mysql.ddl import requalify, split_create_table
from snapkeep.engines.mysql.descriptions import check_readable, physical_tables
from snapkeep.engines.mysql.names import journal_name, old_name, shadow_name
from snapkeep.engines.mysql.physical_env import Locality
from snapkeep.engines.mysql.physical_rows import rows_of_pages
from snapkeep.engines.mysql.privileges import check_restore
from snapkeep.engines.mysql.shadow_load import LOAD_SESSION, ShadowLoader, row_parts
from snapkeep.engines.mysql.swap_plan import swap_plan
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.engines.seams import BlobSource
from snapkeep.errors import SnapkeepError
from snapkeep.faults import crash_point
from snapkeep.progress import Reporter


def prepare_restore(target: MySQLTarget, description: dict[str, Any], repo: BlobSource,
                    reporter: Reporter, *, threads: int | None = None,
                    tables: list[str] | None = None) -> PreparedRestore:
    """Build the snapshot's tables and rows in the shadow database; the live one is untouched.

    ``tables`` restores only those tables and sequences, with their triggers; the live
    database's other tables and objects are left as they are (``scope.py``).

    ``threads`` (default: the machine's cores) connections load rows and add indexes at
    once. On any failure the shadow database is dropped and the error raised
    (RepositoryError or IntegrityError for damaged snapshot data, ServiceUnavailable for
    server errors).
    """
    check_readable(description, "restore", pages=True)
    if tables is not None:
        description = scope.scoped(description, tables)
    where = physical_env.for_restore(target, description, reporter)
    with contextlib.ExitStack() as scratch:
        if where is None and physical_tables(description):  # their rows, read back first
            work = Path(scratch.enter_context(tempfile.TemporaryDirectory(
                prefix="snapkeep-rows-")))
            description, repo = rows_of_pages(description, repo, work, reporter)
        return _prepare(target, description, repo, reporter, where, threads)


def _prepare(target: MySQLTarget, description: dict[str, Any], repo: BlobSource,
             reporter: Reporter, where: Locality | None, threads: int | None
             ) -> PreparedRestore:
    conn = connect(target, database=None, local_infile=True, doing="restoring the database")
    try:
        with errors_as(target, "restoring the database"):
            settle(conn, target, reporter)
            # before the shadow exists: a refusal leaves nothing to clean up
            check_restore(conn, target, description)
    except BaseException:
        conn.close()
        raise
    restore = PreparedRestore(target, description, conn, reporter)
    restore.pages = where
    try:
        with errors_as(target, "restoring the database"):
            restore._build(repo, max(1, threads or os.cpu_count() or 1))
    except BaseException:
        restore.abort()
        raise
    return restore


class PreparedRestore:
    """A restore whose data is loaded in the shadow database, waiting for the cut-over."""

    def __init__(self, target: MySQLTarget, description: dict[str, Any], conn: Connection,
                 reporter: Reporter) -> None:
        self.target = target
        self.description = description
        self.live = target.database
        self.shadow = shadow_name(self.live)
        self.old = old_name(self.live)
        self.journal = journal_name(self.live)
        self.reporter = reporter
        self._conn = conn
        self._state = "preparing"
        self._plan: dict[str, Any] | None = None
        self.cutover_seconds: float | None = None  # the live database incomplete, per swap
        self.pages: Locality | None = None  # where tables stored as pages are placed

    # -- building the shadow ---------------------------------------------------------------

    def _build(self, repo: BlobSource, threads: int) -> None:
        d = self.description
        conn = self._conn
        query(conn, create_db_sql(self.shadow, d["charset"], d["collation"]))
        query(conn, LOAD_SESSION)
        conn.select_db(self.shadow)
        tables = d["tables"]
        total = sum(ref.size for t in tables for ref in row_parts(t))
        self.reporter.add_total(total)
        # Sequences first: a table's DEFAULT nextval(seq) needs its sequence to exist.
        for seq in d.get("sequences", []):
            query(conn, seq["create"])
            query(conn, f"SELECT SETVAL({quote_ident(seq['name'])}, {int(seq['next_value'])}, 0)")
        splits = {t["name"]: split_create_table(t["name"], self._shadow_ddl(t["create"]))
                  for t in tables}
        if d.get("scope") is not None:
            scope.qualify_outside_references(splits, d["scope"], self.live)
        paged = [t for t in tables if "physical" in t]
        for t in tables:
            split = splits[t["name"]]
            # a paged table gets its whole definition before its pages: the .cfg must match
            ddl = [split.load_ddl, split.post_ddl] if "physical" in t else [split.load_ddl]
            for sql in ddl:
                if sql:
                    query(conn, sql)
        deferred = sum(len(splits[t["name"]].deferred) for t in tables if "physical" not in t)
        self.reporter.log(f"created {len(tables)} tables in {quote_ident(self.shadow)} "
                          f"({deferred} keys and foreign keys to add after the rows)")
        if paged:
            assert self.pages is not None
            physical_restore.import_tables(self.target, self.shadow, self.pages, repo, paged,
                                           threads, self.reporter)
        rows = [t for t in tables if "physical" not in t]
        workdir = Path(tempfile.mkdtemp(prefix="snapkeep-load-"))
        try:
            ShadowLoader(self, repo, threads, workdir).run(
                rows, {t["name"]: splits[t["name"]] for t in rows})
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self._state = "prepared"
        self.reporter.log(f"loaded {len(tables)} tables ({total} bytes) into "
                          f"{quote_ident(self.shadow)}")

    @property
    def _source(self) -> str:
        """The name of the database the snapshot was taken of (its self-references)."""
        return str(self.description.get("database") or self.live)

    def _shadow_ddl(self, create: str) -> str:
        """A table's statement with its qualified self-references naming the shadow (a
        ``--table`` restore: only those to restored tables; the others name the live db)."""
        d = self.description
        if d.get("scope") is not None:
            create = requalify(create, self._source, self.shadow, set(d["scope"]))
            return requalify(create, self._source, self.live)
        return requalify(create, self._source, self.shadow)

    # -- cut-over --------------------------------------------------------------------------

    def swap(self) -> None:
        """Make the live database hold the snapshot; the previous tables move to the old db."""
        if self._state != "prepared":
            raise SnapkeepError(f"cannot swap a restore that is {self._state}")
        with errors_as(self.target, "swapping in the restored database"):
            self._swap()

    def _swap(self) -> None:
        conn = self._conn
        started = time.monotonic()
        query(conn, objs.SESSION_DEFAULTS)
        self._plan = plan = swap_plan(conn, self.description, self.live, self.old, self.shadow)
        info = plan["previous"]["database"]
        query(conn, create_db_sql(self.old, info["charset"], info["collation"]))
        journal.begin(conn, self.journal, plan)
        crash_point("mysql.journal-written")
        window = time.monotonic()  # from here the live database is not the old one
        pairs = forward_pairs(plan)
        self._rename(plan, pairs)
        crash_point("mysql.after-rename")
        self._state = "swapped"
        try:
            journal.set_state(conn, self.journal, journal.RENAMED)
            roll_forward(conn, plan, self.reporter, crash=True)
            journal.set_state(conn, self.journal, journal.COMPLETE)
        except BaseException:
            self.rollback()
            raise
        end = time.monotonic()
        self.cutover_seconds = end - window
        created = sum(len(plan["snapshot"][k])
                      for k in ("views", "triggers", "routines", "events"))
        self.reporter.log(
            f"swapped the restored tables into {self.target.describe()}: cut-over "
            f"{self.cutover_seconds:.3f} s ({len(pairs)} tables renamed, {created} objects "
            f"created), {end - started:.3f} s for the whole swap")

    def _rename(self, plan: dict[str, Any], pairs: list[tuple[str, str, str, str]]) -> None:
        """The commit point: the live database created if missing, its triggers dropped,
        then one ``RENAME TABLE``. On a failure before the rename the triggers are put
        back and the old database and journal dropped; after it, rolled back."""
        conn, live = self._conn, self.live
        try:
            if plan["created_live"]:
                query(conn, create_db_sql(live, **plan["snapshot"]["database"]))
                conn.select_db(live)
            objs.drop_triggers(conn, live, plan["scope"])
            crash_point("mysql.triggers-dropped")
            if pairs:
                rename_tables(conn, pairs)
        except BaseException:
            try:
                renamed = was_renamed(conn, plan)
            except pymysql.Error:
                renamed = False  # the connection is gone: cleanup_leftovers decides later
            if not renamed:
                with contextlib.suppress(pymysql.Error):
                    put_triggers_back(conn, plan, self.reporter)
                    drop_db(conn, self.old)
                    journal.drop(conn, self.journal)
                raise
            self._state = "swapped"
            self.rollback()
            raise

    # -- endings ---------------------------------------------------------------------------

    def rollback(self) -> None:
        """After ``swap``: put the previous tables and objects back. Before: ``abort``."""
        if self._state != "swapped":
            self.abort()
            return
        with errors_as(self.target, "rolling back the restore"):
            conn = self._conn
            plan = self._plan
            assert plan is not None
            query(conn, objs.SESSION_DEFAULTS)
            journal.set_state(conn, self.journal, journal.ROLLING_BACK)
            roll_back(conn, plan, self.reporter)
            drop_db(conn, self.shadow)
            drop_db(conn, self.old)
            journal.drop(conn, self.journal)
        self._state = "rolled back"
        self._close()
        self.reporter.log(f"rolled back the restore of {self.target.describe()}")

    def finish(self) -> None:
        """Commit the restore: drop the kept previous tables, the shadow and the journal."""
        if self._state in ("finished",):
            return
        if self._state != "swapped":
            raise SnapkeepError(f"cannot finish a restore that is {self._state}")
        with errors_as(self.target, "finishing the restore"):
            assert self._plan is not None
            drop_aside(self._conn, self._plan)
            drop_db(self._conn, self.old)
            drop_db(self._conn, self.shadow)
            journal.drop(self._conn, self.journal)
        self._state = "finished"
        self._close()

    def abort(self) -> None:
        """Before ``swap``: drop the shadow database (the live one was never touched)."""
        if self._state in ("aborted", "finished", "rolled back"):
            return
        if self._state == "swapped":
            self.rollback()
            return
        try:
            with errors_as(self.target, "dropping the shadow database"):
                drop_db(self._conn, self.shadow)
        except SnapkeepError:
            # The connection itself may be what failed: try once more on a new one.
            conn = connect(self.target, database=None, doing="dropping the shadow database")
            try:
                with errors_as(self.target, "dropping the shadow database"):
                    drop_db(conn, self.shadow)
            finally:
                conn.close()
        self._state = "aborted"
        self._close()

    def _close(self) -> None:
        with contextlib.suppress(pymysql.Error):
            self._conn.close()

    @property
    def state(self) -> str:
        return self._state
