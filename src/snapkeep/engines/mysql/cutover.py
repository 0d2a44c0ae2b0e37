"""The cut-over steps of a database restore, shared by ``PreparedRestore.swap``/``rollback``
(restore.py, whose module doc gives the journal and crash semantics) and by
``cleanup_leftovers``, which settles a cut-over a killed process left."""

from __future__ import annotations

import contextlib
from typing import Any

import pymysql

from snapkeep.engines.mysql import journal, schema, scope
from snapkeep.engines.mysql import objects as objs
from snapkeep.engines.mysql.connect import (
    Connection,
    connect,
    database_exists,
    errors_as,
    query,
    quote_ident,
)
from snapkeep.engines.mysql.names import journal_name, old_name, shadow_name
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.faults import crash_point
from snapkeep.progress import NullReporter, Reporter


def create_db_sql(name: str, charset: str, collation: str, comment: str = "") -> str:
    sql = (f"CREATE DATABASE {quote_ident(name)} CHARACTER SET {charset} COLLATE {collation}")
    if comment:
        sql += " COMMENT " + _literal(comment)
    return sql


def _literal(value: str) -> str:
    return "'" + pymysql.converters.escape_string(value) + "'"


def drop_db(conn: Connection, name: str) -> None:
    query(conn, f"DROP DATABASE IF EXISTS {quote_ident(name)}")


def row_tables(conn: Connection, db: str) -> list[str]:
    return [n for n, kind, _, _ in schema.list_tables(conn, db) if schema.is_table(kind)]


def view_names(conn: Connection, db: str) -> list[str]:
    return [n for n, kind, _, _ in schema.list_tables(conn, db) if kind == "VIEW"]


def rename_tables(conn: Connection, pairs: list[tuple[str, str, str, str]]) -> None:
    q = quote_ident
    query(conn, "RENAME TABLE " + ", ".join(
        f"{q(a)}.{q(t)} TO {q(b)}.{q(u)}" for a, t, b, u in pairs))


def forward_pairs(plan: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The swap's one RENAME TABLE: the live views in the way renamed aside (a view cannot
    change database), the live tables and sequences out, the shadow's in."""
    live = plan["live"]
    pairs = [(live, v, live, a) for v, a in plan.get("aside", [])]
    pairs += [(live, t, plan["old"], t) for t in plan["moved_out"]]
    pairs += [(plan["shadow"], t, live, t) for t in plan["moved_in"]]
    return pairs


def replaced_objects(conn: Connection, live: str, snapshot: dict[str, Any],
                     within: list[str] | None) -> tuple[dict[str, Any], dict[str, Any],
                                                        dict[str, list[Any]]]:
    """(previous, created, kept) for a cut-over of ``snapshot``'s objects into the
    existing database ``live`` (the connection's default database):

    - ``previous``: the live objects the cut-over drops and a rollback creates again —
      triggers (they cannot follow their table out of the database), routines and
      events (MariaDB cannot rename a routine; renaming an event makes its DEFINER the
      current user); never views, which are renamed aside and back;
    - ``created``: the snapshot's objects the cut-over creates;
    - ``kept``: live views, routines and events identical to the snapshot's, left in
      place — nothing to drop or create, in either direction.

    ``within`` (a ``--table`` restore): only the triggers of those tables are replaced.
    """
    if within is not None:
        triggers = [t for t in schema.triggers(conn, live) if t["table"] in within]
        return ({**scope.NO_OBJECTS, "triggers": triggers}, snapshot, dict(objs.NOTHING_KEPT))
    current = schema.objects(conn, live, NullReporter())
    kept = objs.unchanged(current, snapshot)
    previous = objs.without({**current, "views": []}, kept)
    return previous, objs.without(snapshot, kept), kept


# -- the cut-over steps, shared by swap/rollback and by cleanup_leftovers ------------------

def was_renamed(conn: Connection, plan: dict[str, Any]) -> bool:
    """Whether the swap's RENAME TABLE happened (from where the tables are now)."""
    if plan["moved_out"]:
        old = plan["old"]
        return database_exists(conn, old) and bool(
            set(plan["moved_out"]) & set(row_tables(conn, old)))
    if plan["moved_in"]:
        shadow = plan["shadow"]
        here = set(row_tables(conn, shadow)) if database_exists(conn, shadow) else set()
        return not set(plan["moved_in"]) <= here
    if plan.get("aside"):
        live = plan["live"]
        return database_exists(conn, live) and bool(
            {a for _, a in plan["aside"]} & set(view_names(conn, live)))
    return False


def _aside_names(plan: dict[str, Any]) -> set[str]:
    return {a for _, a in plan.get("aside", [])}


def drop_aside(conn: Connection, plan: dict[str, Any]) -> None:
    """The new data stays: drop the previous views the swap renamed aside."""
    live = plan["live"]
    if plan.get("aside") and database_exists(conn, live):
        for _, aside in plan["aside"]:
            query(conn, f"DROP VIEW IF EXISTS {quote_ident(live)}.{quote_ident(aside)}")


def repoint_defaults(conn: Connection, plan: dict[str, Any]) -> None:
    """Point the restored tables' qualified self-references (``DEFAULT nextval(db.seq)``,
    created naming the shadow) at the live database: RENAME TABLE keeps a default's text.
    A metadata-only change; idempotent."""
    live = plan["live"]
    if not plan.get("repoint"):
        return
    query(conn, "SET SESSION foreign_key_checks = 0")
    with contextlib.suppress(pymysql.MySQLError):  # servers without system versioning
        query(conn, "SET SESSION system_versioning_alter_history = KEEP")
    try:
        for table, columns in plan["repoint"]:
            query(conn, f"ALTER TABLE {quote_ident(live)}.{quote_ident(table)} "
                        + ", ".join(f"MODIFY COLUMN {c}" for c in columns))
    finally:
        query(conn, "SET SESSION foreign_key_checks = 1")


def put_triggers_back(conn: Connection, plan: dict[str, Any], reporter: Reporter) -> None:
    """Before the RENAME: only the live triggers were dropped; recreate the previous ones."""
    live = plan["live"]
    if plan["created_live"]:
        drop_db(conn, live)
        return
    previous = plan["previous"]
    conn.select_db(live)
    objs.drop_triggers(conn, live, plan.get("scope"))
    objs.create_all(conn, live, {**scope.NO_OBJECTS, "triggers": previous["triggers"]},
                    reporter, previous["database"])
    scope.relink(conn, live, plan.get("links", []))


def roll_forward(conn: Connection, plan: dict[str, Any], reporter: Reporter,
                  crash: bool = False) -> None:
    """After the RENAME: replace the live database's objects with the snapshot's."""
    live = plan["live"]
    snap = plan["snapshot"]
    conn.select_db(live)
    objs.drop_triggers(conn, live, plan.get("scope"))
    if plan.get("scope") is None:
        objs.drop_non_tables(conn, live, keep=_aside_names(plan), kept=plan.get("kept"))
    scope.relink(conn, live, plan.get("links", []))
    repoint_defaults(conn, plan)
    if crash:
        crash_point("mysql.defaults-repointed")
    objs.create_all(conn, live, snap, reporter, snap["database"],
                    after_views=(lambda: crash_point("mysql.objects-half")) if crash else None)


def roll_back(conn: Connection, plan: dict[str, Any], reporter: Reporter) -> None:
    """After the RENAME: move the tables back and recreate the previous objects."""
    live, old, shadow = plan["live"], plan["old"], plan["shadow"]
    if not database_exists(conn, live):
        return  # a live database this restore created, already dropped
    conn.select_db(live)
    objs.drop_triggers(conn, live, plan.get("scope"))
    renamed = was_renamed(conn, plan)
    if plan.get("scope") is None:
        # the previous views come back by renaming: keep those renamed aside, or all of
        # them once the reverse RENAME is done (a journal of an older snapkeep has no
        # "aside": it recreates its previous views)
        keep = _aside_names(plan) if renamed or "aside" not in plan else set(view_names(conn, live))
        objs.drop_non_tables(conn, live, keep=keep, kept=plan.get("kept"))
    if renamed:
        query(conn, f"CREATE DATABASE IF NOT EXISTS {quote_ident(shadow)}")
        present = set(row_tables(conn, live))
        kept = set(row_tables(conn, old)) if database_exists(conn, old) else set()
        views = set(view_names(conn, live))
        pairs = [(live, t, shadow, t) for t in plan["moved_in"] if t in present]
        pairs += [(old, t, live, t) for t in plan["moved_out"] if t in kept]
        pairs += [(live, a, live, v) for v, a in plan.get("aside", []) if a in views]
        if pairs:
            rename_tables(conn, pairs)
    crash_point("mysql.rollback-renamed")
    if plan["created_live"]:
        drop_db(conn, live)
        return
    previous = plan["previous"]
    objs.create_all(conn, live, previous, reporter, previous["database"])
    scope.relink(conn, live, plan.get("links", []))


def cleanup_leftovers(target: MySQLTarget, reporter: Reporter, *,
                      keep_new: bool | None = None) -> None:
    """Finish or undo what a killed restore of this database left behind; idempotent.

    An interrupted cut-over is rolled back when it was killed before its RENAME TABLE
    and rolled forward after it (see the module doc) — or, when the caller knows better
    (a restore of several parts, settled together), rolled forward with ``keep_new=True``
    (doing the RENAME if it had not happened) or back with ``keep_new=False``. Either way
    the live database is entirely the old or entirely the new one; then the shadow, old
    and journal databases are dropped. An interrupted ``rollback`` is always completed.
    Must not run while a restore of the same database is in progress.
    """
    conn = connect(target, database=None, doing="cleaning up after an interrupted restore")
    try:
        with errors_as(target, "cleaning up after an interrupted restore"):
            settle(conn, target, reporter, keep_new)
    finally:
        conn.close()


def settle(conn: Connection, target: MySQLTarget, reporter: Reporter,
             keep_new: bool | None = None) -> None:
    db = target.database
    jdb = journal_name(db)
    found = journal.read(conn, jdb)
    if found is not None:
        plan, state = found
        query(conn, objs.SESSION_DEFAULTS)
        where = target.describe()
        if state == journal.ROLLING_BACK:
            reporter.log(f"completing the interrupted rollback of a restore of {where}: "
                         f"the live database gets its previous tables and objects back")
            roll_back(conn, plan, reporter)
        elif state == journal.COMPLETE and keep_new is not False:
            drop_aside(conn, plan)
        elif keep_new is False:
            reporter.log(f"rolling back the interrupted cut-over of a restore of {where}")
            if was_renamed(conn, plan):
                roll_back(conn, plan, reporter)
            else:
                put_triggers_back(conn, plan, reporter)
        elif keep_new and not was_renamed(conn, plan):
            reporter.log(f"completing the interrupted cut-over of a restore of {where}: its "
                         f"tables are swapped in and the snapshot's objects created")
            if plan["created_live"] and not database_exists(conn, plan["live"]):
                query(conn, create_db_sql(plan["live"], **plan["snapshot"]["database"]))
            conn.select_db(plan["live"])
            objs.drop_triggers(conn, plan["live"], plan.get("scope"))
            pairs = forward_pairs(plan)
            if pairs:
                rename_tables(conn, pairs)
            roll_forward(conn, plan, reporter)
            drop_aside(conn, plan)
        elif state == journal.RENAMED or was_renamed(conn, plan):
            reporter.log(f"completing the interrupted cut-over of a restore of {where}: it "
                         f"was killed after its tables were swapped in, so the snapshot's "
                         f"views, triggers, routines and events are created")
            roll_forward(conn, plan, reporter)
            drop_aside(conn, plan)
        else:
            reporter.log(f"undoing the interrupted cut-over of a restore of {where}: it was "
                         f"killed before its tables were swapped in, so the previous "
                         f"triggers are put back")
            put_triggers_back(conn, plan, reporter)
    for name in (shadow_name(db), old_name(db), jdb):
        if database_exists(conn, name):
            reporter.log(f"dropping {quote_ident(name)} left by an interrupted restore of "
                         f"{target.describe()}")
            drop_db(conn, name)
