"""The plan of a database cut-over (``PreparedRestore.swap``), written to the journal
before anything moves: which tables move out and in, which live views are renamed aside
and which objects stay in place (``cutover.replaced_objects``), the defaults to re-point,
and everything a rollback or ``cleanup_leftovers`` needs to put the previous state back
(``previous``) or to complete the new one (``snapshot``)."""

from __future__ import annotations

import secrets
from typing import Any

from snapkeep.engines.mysql import objects as objs
from snapkeep.engines.mysql import schema, scope
from snapkeep.engines.mysql.connect import Connection, database_exists
from snapkeep.engines.mysql.cutover import replaced_objects, row_tables, view_names
from snapkeep.engines.mysql.ddl import requalify, self_referencing_columns
from snapkeep.engines.mysql.descriptions import snapshot_objects


def swap_plan(conn: Connection, description: dict[str, Any], live: str, old: str,
              shadow: str) -> dict[str, Any]:
    """The plan for swapping ``shadow`` (built from ``description``) into ``live``, the
    previous tables going to ``old``; reads the live database as it is now."""
    d = description
    within = d.get("scope")  # None: the whole database
    snapshot_db = {"charset": d["charset"], "collation": d["collation"],
                   "comment": d.get("comment", "")}
    created_live = not database_exists(conn, live)
    moved_in = row_tables(conn, shadow)
    links: list[dict[str, str]] = []
    created = snapshot_objects(d, live)
    kept = dict(objs.NOTHING_KEPT)
    if created_live:  # dropped (or a scratch copy): created in the journaled cut-over
        info = dict(snapshot_db)
        moved_out: list[str] = []
        live_views: list[str] = []
        previous: dict[str, Any] = dict(scope.NO_OBJECTS)
    else:
        conn.select_db(live)
        info = schema.database_info(conn, live)
        moved_out = row_tables(conn, live)
        live_views = view_names(conn, live)
        # the previous views are renamed aside, not recreated: even one whose tables
        # are gone comes back as it was on a rollback; those equal to the snapshot's
        # stay in place (``replaced_objects``)
        previous, created, kept = replaced_objects(conn, live, created, within)
        live_views = [v for v in live_views if v not in kept["views"]]
        if within is not None:  # only these tables and their triggers; the database
            moved_out = [t for t in moved_out if t in within]  # keeps its settings
            live_views = [v for v in live_views if v in moved_in]
            snapshot_db = info
            links = scope.links_into(conn, live, within)
    previous["database"] = info
    tag = secrets.token_hex(4)
    return {
        "live": live, "old": old, "shadow": shadow, "created_live": created_live,
        "moved_out": moved_out, "moved_in": moved_in,
        "aside": [[v, f"__skaside_{tag}_{i}"] for i, v in enumerate(live_views)],
        "kept": kept,
        "repoint": repoints(d, live),
        "previous": previous, "scope": within, "links": links,
        "snapshot": {**created, "database": snapshot_db},
    }


def repoints(description: dict[str, Any], live: str) -> list[tuple[str, list[str]]]:
    """Per restored table, its column definitions whose qualified self-references name
    the live database (``RENAME TABLE`` keeps a default's text: the cut-over re-points
    them with an instant ``MODIFY COLUMN``, ``cutover.repoint_defaults``)."""
    source = str(description.get("database") or live)
    out = []
    for t in description["tables"]:
        columns = self_referencing_columns(t["create"], source)
        if columns:
            out.append((t["name"], [requalify(c, source, live) for c in columns]))
    return out
