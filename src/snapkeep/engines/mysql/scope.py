"""Restoring some tables of a snapshot (``--table``) instead of the whole database.

The shadow then holds only the named tables (and their triggers); the swap renames just
those, and the live database's other tables, views, routines and events stay as they
are. Foreign keys need care, because InnoDB follows a parent table through RENAME TABLE:

- a restored table's foreign key to a table that is not restored is created in the
  shadow already naming the live database (``ddl.qualify_reference``), so after the swap
  it points at the live parent;
- a foreign key of a table that stays, pointing at a restored table ("a link"), follows
  the previous table into the old database in the RENAME TABLE. Right after it (and
  when a rollback or the journal's recovery undoes or completes one) ``relink`` points
  each link back into the live database; it is idempotent. With ``foreign_key_checks``
  off that is a metadata-only change; rows of the other tables are not checked against
  the restored ones, as with any restore of part of a database.
"""

from __future__ import annotations

from typing import Any

from snapkeep.engines.mysql.connect import Connection, query, query_text, quote_ident
from snapkeep.engines.mysql.ddl import parse_create_table, qualify_reference
from snapkeep.errors import NotFoundError

NO_OBJECTS: dict[str, list[Any]] = {"routines": [], "views": [], "triggers": [], "events": []}


def table_names(description: dict[str, Any]) -> list[str]:
    """The tables and sequences a database description holds, in its order."""
    return [t["name"] for t in description.get("tables", [])] + \
        [s["name"] for s in description.get("sequences", [])]


def scoped(description: dict[str, Any], tables: list[str]) -> dict[str, Any]:
    """``description`` narrowed to ``tables`` with their triggers; no views, routines or
    events. Raises NotFoundError naming a table the snapshot does not hold."""
    known = table_names(description)
    missing = [t for t in tables if t not in known]
    if missing:
        raise NotFoundError(
            f"the snapshot's database has no table {', '.join(map(quote_ident, missing))}; "
            f"it holds {len(known)}: {', '.join(known[:20])}{' …' if len(known) > 20 else ''}")
    wanted = set(tables)
    d = dict(description)
    d["tables"] = [t for t in description["tables"] if t["name"] in wanted]
    d["sequences"] = [s for s in description.get("sequences", []) if s["name"] in wanted]
    d["triggers"] = [t for t in description.get("triggers", []) if t.get("table") in wanted]
    d["views"], d["routines"], d["events"] = [], [], []
    d["scope"] = sorted(wanted)
    return d


def qualify_outside_references(splits: dict[str, Any], scope: list[str], live: str) -> None:
    """Make the deferred foreign keys of restored tables that point outside ``scope``
    name the live database (see the module doc)."""
    inside = set(scope)
    for split in splits.values():
        for fk in split.foreign:
            if fk.ref_db is None and fk.ref_table not in inside:
                fk.text = qualify_reference(fk, live)


def links_into(conn: Connection, live: str, scope: list[str]) -> list[dict[str, str]]:
    """The foreign keys of live tables outside ``scope`` that point at tables in it:
    ``{"table", "name", "text"}`` with the constraint's text from SHOW CREATE TABLE."""
    inside = set(scope)
    rows = query_text(conn, "SELECT TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME FROM "
                            "information_schema.REFERENTIAL_CONSTRAINTS WHERE "
                            "CONSTRAINT_SCHEMA = %s AND UNIQUE_CONSTRAINT_SCHEMA = %s "
                            "ORDER BY TABLE_NAME, CONSTRAINT_NAME", (live, live))
    wanted: dict[str, set[str]] = {}
    for table, name, parent in rows:
        if parent in inside and table not in inside:
            wanted.setdefault(table, set()).add(name)
    links = []
    for table, names in wanted.items():
        create = query_text(conn, f"SHOW CREATE TABLE {quote_ident(live)}."
                                  f"{quote_ident(table)}")[0][1]
        for item in parse_create_table(create)[1]:
            if item.kind == "foreign" and item.name in names:
                links.append({"table": table, "name": item.name, "text": item.text})
    return links


def _present(conn: Connection, live: str, link: dict[str, str]) -> str | None:
    """The database the link's constraint points into now, or None when it is absent."""
    rows = query_text(conn, "SELECT UNIQUE_CONSTRAINT_SCHEMA FROM "
                            "information_schema.REFERENTIAL_CONSTRAINTS WHERE "
                            "CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s AND CONSTRAINT_NAME = %s",
                      (live, link["table"], link["name"]))
    return rows[0][0] if rows else None


def _drop(conn: Connection, live: str, link: dict[str, str]) -> None:
    query(conn, f"ALTER TABLE {quote_ident(live)}.{quote_ident(link['table'])} "
                f"DROP FOREIGN KEY {quote_ident(link['name'])}")


def relink(conn: Connection, live: str, links: list[dict[str, Any]]) -> None:
    """Make every link exist and point into the live database (after the RENAME, or when
    undoing one); foreign key checks off, so InnoDB does not read rows."""
    query(conn, "SET SESSION foreign_key_checks = 0")
    try:
        for link in links:
            where = _present(conn, live, link)
            if where == live:
                continue
            if where is not None:
                _drop(conn, live, link)
            query(conn, f"ALTER TABLE {quote_ident(live)}.{quote_ident(link['table'])} "
                        f"ADD {link['text']}")
    finally:
        query(conn, "SET SESSION foreign_key_checks = 1")

