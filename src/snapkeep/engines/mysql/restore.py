"""Restoring into a shadow database, then swapping it in with one atomic RENAME TABLE.

``prepare_restore`` builds every table of the snapshot in the shadow database and loads
its rows; the live database is not touched. ``PreparedRestore.swap`` moves the live
tables to the *old* database and the shadow tables into the live one in a single
``RENAME TABLE``, then replaces views, routines, triggers (after the data, so they do
not fire on it) and events. ``finish`` drops what was kept; ``rollback`` puts it back.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pymysql

from snapkeep.engines.mysql import objects as objs
from snapkeep.engines.mysql import schema
from snapkeep.engines.mysql.connect import (
    Connection,
    connect,
    database_exists,
    errors_as,
    query,
    quote_ident,
)
from snapkeep.engines.mysql.encoding import Column
from snapkeep.engines.mysql.loader import load_rows
from snapkeep.engines.mysql.names import old_name, shadow_name
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.errors import RepositoryError, SnapkeepError
from snapkeep.progress import Reporter
from snapkeep.repository import BlobRef, Repository

# Loading: keep every stored value as it is (zero dates, id 0 under AUTO_INCREMENT,
# out-of-range ENUM index 0); no per-row foreign key or unique checks.
LOAD_SESSION = ("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', "
                "time_zone = '+00:00', foreign_key_checks = 0, unique_checks = 0, "
                "net_read_timeout = 3600, net_write_timeout = 3600")
SUPPORTED_FORMATS = (1,)


def _create_db_sql(name: str, charset: str, collation: str, comment: str = "") -> str:
    sql = (f"CREATE DATABASE {quote_ident(name)} CHARACTER SET {charset} COLLATE {collation}")
    if comment:
        sql += " COMMENT " + _literal(comment)
    return sql


def _literal(value: str) -> str:
    return "'" + pymysql.converters.escape_string(value) + "'"


def _drop_db(conn: Connection, name: str) -> None:
    query(conn, f"DROP DATABASE IF EXISTS {quote_ident(name)}")


def cleanup_leftovers(target: MySQLTarget, reporter: Reporter) -> None:
    """Drop the shadow and old databases a killed restore of this database left behind."""
    conn = connect(target, database=None, doing="cleaning up after an interrupted restore")
    try:
        with errors_as(target, "cleaning up after an interrupted restore"):
            _cleanup(conn, target, reporter)
    finally:
        conn.close()


def _cleanup(conn: Connection, target: MySQLTarget, reporter: Reporter) -> None:
    for name in (shadow_name(target.database), old_name(target.database)):
        if database_exists(conn, name):
            reporter.log(f"dropping {quote_ident(name)} left by an interrupted restore of "
                         f"{target.describe()}")
            _drop_db(conn, name)


def prepare_restore(target: MySQLTarget, description: dict[str, Any], repo: Repository,
                    reporter: Reporter) -> PreparedRestore:
    """Build the snapshot's tables and rows in the shadow database; the live one is untouched.

    On any failure the shadow database is dropped and the error raised (RepositoryError
    or IntegrityError for damaged snapshot data, ServiceUnavailable for server errors).
    """
    if description.get("kind") != "mysql" or description.get("format") not in SUPPORTED_FORMATS:
        raise RepositoryError(f"the snapshot's database description (kind "
                              f"{description.get('kind')!r}, format {description.get('format')!r})"
                              f" is not one this snapkeep can restore")
    conn = connect(target, database=None, local_infile=True, doing="restoring the database")
    restore = PreparedRestore(target, description, conn, reporter)
    try:
        with errors_as(target, "restoring the database"):
            _cleanup(conn, target, reporter)
            restore._build(repo)
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
        self.reporter = reporter
        self._conn = conn
        self._state = "preparing"
        self._previous: dict[str, Any] | None = None
        self._moved_out: list[str] = []
        self._moved_in: list[str] = []
        self._created_live = False

    # -- building the shadow ---------------------------------------------------------------

    def _build(self, repo: Repository) -> None:
        d = self.description
        conn = self._conn
        query(conn, _create_db_sql(self.shadow, d["charset"], d["collation"]))
        query(conn, LOAD_SESSION)
        conn.select_db(self.shadow)
        total = sum(int(t["rows"]["size"]) for t in d["tables"])
        self.reporter.add_total(total)
        workdir = Path(tempfile.mkdtemp(prefix="snapkeep-load-"))
        try:
            for table in d["tables"]:
                self._build_table(repo, table, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        for seq in d.get("sequences", []):
            query(conn, seq["create"])
            query(conn, f"SELECT SETVAL({quote_ident(seq['name'])}, {int(seq['next_value'])}, 0)")
        self._state = "prepared"
        self.reporter.log(f"loaded {len(d['tables'])} tables into {quote_ident(self.shadow)}")

    def _build_table(self, repo: Repository, table: dict[str, Any], workdir: Path) -> None:
        conn = self._conn
        name = table["name"]
        query(conn, table["create"])
        columns = [Column.from_json(c) for c in table["columns"]]
        ref = BlobRef.from_json(table["rows"])
        loaded = load_rows(conn, self.shadow, name, columns, repo, ref, workdir, self.reporter)
        if loaded != int(table["row_count"]):
            raise RepositoryError(
                f"table {quote_ident(name)}: {loaded} rows loaded, the snapshot has "
                f"{table['row_count']}; the snapshot data or the server rejected rows")
        wanted = table.get("auto_increment")
        if wanted is not None:
            query(conn, f"ALTER TABLE {quote_ident(name)} AUTO_INCREMENT = {int(wanted)}")

    # -- cut-over --------------------------------------------------------------------------

    def _tables(self, db: str) -> list[str]:
        return [n for n, kind, _, _ in schema.list_tables(self._conn, db)
                if kind in ("BASE TABLE", "SEQUENCE")]

    def swap(self) -> None:
        """Make the live database hold the snapshot; the previous tables move to the old db."""
        if self._state != "prepared":
            raise SnapkeepError(f"cannot swap a restore that is {self._state}")
        with errors_as(self.target, "swapping in the restored database"):
            self._swap()

    def _swap(self) -> None:
        conn = self._conn
        d = self.description
        live, old, shadow = self.live, self.old, self.shadow
        query(conn, objs.SESSION_DEFAULTS)
        if not database_exists(conn, live):
            query(conn, _create_db_sql(live, d["charset"], d["collation"]))
            self._created_live = True
        conn.select_db(live)
        previous = schema.objects(conn, live, self.reporter)
        previous["database"] = schema.database_info(conn, live)
        self._previous = previous
        self._moved_out = self._tables(live)
        self._moved_in = self._tables(shadow)
        info = previous["database"]
        query(conn, _create_db_sql(old, info["charset"], info["collation"]))
        objs.drop_triggers(conn, live)
        pairs = [(live, t, old, t) for t in self._moved_out]
        pairs += [(shadow, t, live, t) for t in self._moved_in]
        try:
            if pairs:
                self._rename(pairs)
        except BaseException:
            objs.create_all(conn, live, {"routines": [], "views": [], "events": [],
                                         "triggers": previous["triggers"]}, self.reporter,
                            previous["database"])
            _drop_db(conn, old)
            raise
        self._state = "swapped"
        try:
            objs.drop_non_tables(conn, live)
            objs.create_all(conn, live, d, self.reporter, {
                "charset": d["charset"], "collation": d["collation"],
                "comment": d.get("comment", "")})
        except BaseException:
            self.rollback()
            raise
        self.reporter.log(f"swapped the restored tables into {self.target.describe()}")

    def _rename(self, pairs: list[tuple[str, str, str, str]]) -> None:
        q = quote_ident
        query(self._conn, "RENAME TABLE " + ", ".join(
            f"{q(a)}.{q(t)} TO {q(b)}.{q(u)}" for a, t, b, u in pairs))

    # -- endings ---------------------------------------------------------------------------

    def rollback(self) -> None:
        """After ``swap``: put the previous tables and objects back. Before: ``abort``."""
        if self._state != "swapped":
            self.abort()
            return
        with errors_as(self.target, "rolling back the restore"):
            conn = self._conn
            live = self.live
            previous = self._previous or {}
            query(conn, objs.SESSION_DEFAULTS)
            conn.select_db(live)
            objs.drop_triggers(conn, live)
            objs.drop_non_tables(conn, live)
            present = set(self._tables(live))
            pairs = [(live, t, self.shadow, t) for t in self._moved_in if t in present]
            pairs += [(self.old, t, live, t) for t in self._moved_out]
            if pairs:
                self._rename(pairs)
            objs.create_all(conn, live, previous, self.reporter, previous["database"])
            _drop_db(conn, self.shadow)
            _drop_db(conn, self.old)
            if self._created_live:
                _drop_db(conn, live)
        self._state = "rolled back"
        self._close()
        self.reporter.log(f"rolled back the restore of {self.target.describe()}")

    def finish(self) -> None:
        """Commit the restore: drop the kept previous tables and the (empty) shadow database."""
        if self._state in ("finished",):
            return
        if self._state != "swapped":
            raise SnapkeepError(f"cannot finish a restore that is {self._state}")
        with errors_as(self.target, "finishing the restore"):
            _drop_db(self._conn, self.old)
            _drop_db(self._conn, self.shadow)
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
                _drop_db(self._conn, self.shadow)
        except SnapkeepError:
            # The connection itself may be what failed: try once more on a new one.
            conn = connect(self.target, database=None, doing="dropping the shadow database")
            try:
                with errors_as(self.target, "dropping the shadow database"):
                    _drop_db(conn, self.shadow)
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
