"""A snapshot's database description as a restore or an export reads it: the formats this
snapkeep reads (``dump.py`` gives them), and the description renamed for a database of
another name — its qualified self-references (``nextval(`db`.`seq`)``, a view's
``db.f()``) naming that one."""

from __future__ import annotations

from typing import Any

from snapkeep.engines.mysql.ddl import requalify
from snapkeep.errors import RepositoryError

# 4: format 3 whose InnoDB tables may be stored as pages ("physical", physical_dump.py);
# older snapkeeps refuse it rather than restore those tables empty
SUPPORTED_FORMATS = (1, 2, 3, 4)
PHYSICAL_FORMAT = 4


def check_readable(description: dict[str, Any], doing: str, hint: str = "", *,
                   pages: bool = False) -> None:
    """RepositoryError unless ``description`` is a database description this snapkeep
    reads (``doing``: "restore", "export"; ``hint`` ends the message). ``pages``: the
    caller can place tables stored as pages (the physical restore); others refuse them."""
    if description.get("kind") != "mysql" or description.get("format") not in SUPPORTED_FORMATS:
        raise RepositoryError(f"the snapshot's database description (kind "
                              f"{description.get('kind')!r}, format {description.get('format')!r})"
                              f" is not one this snapkeep can {doing}{hint}")
    paged = physical_tables(description)
    if paged and not pages:
        raise RepositoryError(
            f"the snapshot was taken physically ({len(paged)} InnoDB tables stored as pages, "
            f"e.g. {paged[0]}); this {doing} cannot read pages yet (docs/physical.md, Left): "
            "restore the snapshot without it")


def physical_tables(description: dict[str, Any]) -> list[str]:
    """The tables of ``description`` stored as pages (``physical_dump.py``)."""
    return [t["name"] for t in description.get("tables", []) if "physical" in t]


def renamed_description(description: dict[str, Any], database: str) -> dict[str, Any]:
    """``description`` as if dumped from a database named ``database``: its ``database``
    and the qualified self-references of its tables and views (``nextval(`db`.`seq`)``)
    renamed. For a snapshot dumped from a scratch copy (an import) but restored as the
    environment's database."""
    source = str(description.get("database") or database)
    d = dict(description)
    d["tables"] = [{**t, "create": requalify(t["create"], source, database)}
                   for t in description.get("tables", [])]
    d["views"] = _views_naming(description, source, database)
    d["database"] = database
    return d


def _views_naming(description: dict[str, Any], source: str, database: str
                  ) -> list[dict[str, Any]]:
    """The description's views with a qualified ``source.f()`` naming ``database`` (left
    as they are where ``source`` is also the name of one of its objects: ambiguous)."""
    d = description
    names = {t["name"] for t in d.get("tables", [])} | {v["name"] for v in d["views"]} | {
        s["name"] for s in d.get("sequences", [])}
    if source == database or source in names:
        return d["views"]
    return [{**v, "create": requalify(v["create"], source, database)} for v in d["views"]]


def snapshot_objects(description: dict[str, Any], live: str) -> dict[str, Any]:
    """The snapshot's routines, views, triggers and events as the cut-over creates them
    in ``live``: a view's qualified ``db.f()`` naming it (left as it is where the
    database's name is also one of its objects' names)."""
    d = description
    source = str(d.get("database") or live)
    return {"routines": d["routines"], "views": _views_naming(d, source, live),
            "triggers": d["triggers"], "events": d["events"]}
