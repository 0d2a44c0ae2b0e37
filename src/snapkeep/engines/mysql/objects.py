"""Replaying and dropping views, triggers, routines and events.

Each object is created with the ``sql_mode``, ``character_set_client`` and
``collation_connection`` it was created with (and an event with its ``time_zone``), its
statement sent in that character set, so ``SHOW CREATE`` reads the same afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pymysql
from pymysql.converters import escape_string

from snapkeep.engines.mysql.connect import (
    ER_NO_SUCH_TABLE,
    Connection,
    query,
    query_text,
    quote_ident,
    sql_bytes,
)
from snapkeep.engines.mysql.encoding import python_codec
from snapkeep.progress import Reporter

ER_VIEW_INVALID = 1356
SESSION_DEFAULTS = "SET NAMES utf8mb4, SESSION time_zone = '+00:00'"


def execute_as_created(conn: Connection, obj: dict[str, Any], sql_mode: str | None = None) -> None:
    """Run ``obj["create"]`` in the session context the object was created in."""
    charset = obj.get("character_set_client") or "utf8mb4"
    codec = python_codec(charset)
    statement: bytes
    if codec is None:
        charset, codec = "utf8mb4", "utf-8"
    try:
        statement = obj["create"].encode(codec, "surrogateescape")
    except UnicodeEncodeError:
        charset, statement = "utf8mb4", sql_bytes(obj["create"])
    collation = obj.get("collation_connection") or "utf8mb4_general_ci"
    mode = obj.get("sql_mode", sql_mode) or ""
    settings = "SET SESSION sql_mode = %s, character_set_client = %s, collation_connection = %s"
    args: list[Any] = [mode, charset, collation]
    if obj.get("time_zone"):
        settings += ", time_zone = %s"
        args.append(obj["time_zone"])
    old_mode = query_text(conn, "SELECT @@SESSION.sql_mode")[0][0]
    query(conn, settings, args)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        query(conn, SESSION_DEFAULTS)
        query(conn, "SET SESSION sql_mode = %s", (old_mode,))


def create_views(conn: Connection, views: list[dict[str, Any]]) -> None:
    """Create views in order; one whose dependency is missing is retried after the others."""
    pending = list(views)
    while pending:
        deferred: list[dict[str, Any]] = []
        last_error: pymysql.MySQLError | None = None
        for view in pending:
            try:
                execute_as_created(conn, view)
            except pymysql.MySQLError as e:
                if e.args and e.args[0] in (ER_NO_SUCH_TABLE, ER_VIEW_INVALID):
                    deferred.append(view)
                    last_error = e
                else:
                    raise
        if len(deferred) == len(pending):
            assert last_error is not None
            raise last_error
        pending = deferred


def create_all(conn: Connection, db: str, objs: dict[str, Any], reporter: Reporter,
               database: dict[str, str], after_views: Callable[[], None] | None = None) -> None:
    """Routines, views, triggers, events into ``db`` (the default database), then set the
    database's charset, collation and comment to ``database``. ``after_views`` (a test
    seam) is called between the views and the triggers.

    Routines, triggers and events remember the database collation they were created
    under, so the database is switched to it around each one that had another.
    """
    current = [""]

    def under_collation(obj: dict[str, Any]) -> None:
        wanted = obj.get("database_collation") or database["collation"]
        if wanted != current[0]:
            query(conn, f"ALTER DATABASE {quote_ident(db)} COLLATE {wanted}")
            current[0] = wanted

    for routine in objs["routines"]:
        under_collation(routine)
        execute_as_created(conn, routine)
    under_collation({})
    create_views(conn, objs["views"])
    if after_views is not None:
        after_views()
    for trigger in objs["triggers"]:
        under_collation(trigger)
        execute_as_created(conn, trigger)
    for event in objs["events"]:
        under_collation(event)
        execute_as_created(conn, event)
        still = query(conn, "SELECT 1 FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s "
                            "AND EVENT_NAME = %s", (db, event["name"]))
        if not still:
            reporter.log(f"warning: event {quote_ident(event['name'])} was not restored: its "
                         f"schedule has ended and it is ON COMPLETION NOT PRESERVE, so the server "
                         f"dropped it on creation")
    query(conn, f"ALTER DATABASE {quote_ident(db)} CHARACTER SET {database['charset']} "
                f"COLLATE {database['collation']} COMMENT "
                f"'{escape_string(database.get('comment') or '')}'")


def drop_triggers(conn: Connection, db: str, tables: list[str] | None = None) -> None:
    """Drop the triggers of ``db`` (only those on ``tables`` when given)."""
    for name, table in query_text(conn, "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM "
                                        "information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
                                  (db,)):
        if tables is not None and table not in tables:
            continue
        query(conn, f"DROP TRIGGER IF EXISTS {quote_ident(db)}.{quote_ident(name)}")


def drop_non_tables(conn: Connection, db: str, keep: set[str] | frozenset[str] = frozenset(),
                    kept: dict[str, list[Any]] | None = None) -> None:
    """Drop the views (but those in ``keep``), routines and events of ``db`` (triggers go
    with ``drop_triggers``), but those ``kept`` (``unchanged``)."""
    q = quote_ident(db)
    kept = kept or NOTHING_KEPT
    keep = set(keep) | set(kept["views"])
    routines = {(k, n) for k, n in kept["routines"]}
    for (name,) in query_text(conn, "SELECT TABLE_NAME FROM information_schema.VIEWS "
                                    "WHERE TABLE_SCHEMA = %s", (db,)):
        if name in keep:
            continue
        query(conn, f"DROP VIEW IF EXISTS {q}.{quote_ident(name)}")
    for kind, name in query_text(conn, "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM "
                                       "information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
                                 (db,)):
        if kind in ("PROCEDURE", "FUNCTION") and (kind, name) not in routines:
            query(conn, f"DROP {kind} IF EXISTS {q}.{quote_ident(name)}")
    for (name,) in query_text(conn, "SELECT EVENT_NAME FROM information_schema.EVENTS "
                                    "WHERE EVENT_SCHEMA = %s", (db,)):
        if name not in kept["events"]:
            query(conn, f"DROP EVENT IF EXISTS {q}.{quote_ident(name)}")


# What a cut-over leaves in place: the live views, routines ([type, name]) and events
# identical to the snapshot's (``unchanged``).
NOTHING_KEPT: dict[str, list[Any]] = {"views": [], "routines": [], "events": []}
_SAME = {"views": ("create", "character_set_client", "collation_connection"),
         "routines": ("type", "create", "sql_mode", "character_set_client",
                      "collation_connection", "database_collation"),
         "events": ("create", "sql_mode", "time_zone", "character_set_client",
                    "collation_connection", "database_collation")}


def _key(kind: str, obj: dict[str, Any]) -> Any:
    return [obj["type"], obj["name"]] if kind == "routines" else obj["name"]


def unchanged(live: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, list[Any]]:
    """The live views, routines and events whose definition and session context are the
    snapshot's: the cut-over leaves them where they are, so neither it nor a rollback
    drops and creates them (which, for another user's DEFINER, needs SET USER)."""
    out: dict[str, list[Any]] = {}
    for kind, fields in _SAME.items():
        wanted = {repr(_key(kind, o)): o for o in snapshot[kind]}
        out[kind] = [_key(kind, o) for o in live[kind]
                     if (w := wanted.get(repr(_key(kind, o)))) is not None
                     and all(o.get(f) == w.get(f) for f in fields)]
    return out


def without(objs: dict[str, Any], kept: dict[str, list[Any]]) -> dict[str, Any]:
    """``objs`` (views, triggers, routines, events) but those ``kept``."""
    return {**objs, **{kind: [o for o in objs[kind] if _key(kind, o) not in kept[kind]]
                       for kind in _SAME}}
