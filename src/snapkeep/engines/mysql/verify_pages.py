"""Verifying a restored copy's tables that the snapshot stored as pages, for a drill.

Such a table has no row digest (reading every row at snapshot time is the cost the
physical path avoids). By the time a drill gets here its restore has already checked
every chunk of the ``.ibd``/``.cfg`` against its hash and the server has checked every
page's checksum and the ``.cfg`` against the table's definition on ``IMPORT``. What
``check_paged`` adds, per table of the restored copy, on ``threads`` connections:

- ``CHECK TABLE … EXTENDED``: every index's records against the clustered index's (the
  server's own full consistency check of the imported B-trees);
- ``SELECT COUNT(*)`` (``FOR SYSTEM_TIME ALL`` for a system-versioned table: its history
  travels in the pages) against the row count the snapshot told from the same pages as
  it stored them (``ibd_rows.py``, recorded as ``physical.rows``).

``compare_paged`` turns the findings into one line per table not proven sound: a check
that failed, a count that differs, a table missing — or, when the snapshot recorded no
count (its pages' layout did not tell one), "not verifiable". Row *contents* are not
compared with the snapshot's source: that needs a digest read at snapshot time.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from snapkeep.engines.mysql.connect import (
    DRIVER_ERRORS,
    Connection,
    connect,
    errors_as,
    query_text,
    quote_ident,
)
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.progress import Reporter

DOING = "checking the restored copy's tables stored as pages"
PAGES_NOT_VERIFIABLE = "rows not verifiable (the snapshot recorded no row count for its pages)"


def paged(description: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The tables of ``description`` stored as pages, by name."""
    return {t["name"]: t for t in description.get("tables", []) if "physical" in t}


def check_paged(target: MySQLTarget, description: dict[str, Any], reporter: Reporter, *,
                threads: int | None = None) -> dict[str, dict[str, Any]]:
    """``{table: {"problems": [...], "rows": n}}`` for every table of ``description``
    stored as pages, as found in ``target.database`` (``"error"``: it cannot be read)."""
    tables = paged(description)
    if not tables:
        return {}
    local = threading.local()
    conns: list[Connection] = []
    lock = threading.Lock()

    def conn() -> Connection:
        c = getattr(local, "conn", None)
        if c is None:
            c = connect(target, doing=DOING)
            local.conn = c
            with lock:
                conns.append(c)
        return c

    def check(name: str) -> tuple[str, dict[str, Any]]:
        c, q = conn(), quote_ident(name)
        every = " FOR SYSTEM_TIME ALL" if tables[name].get("system_time") else ""
        try:
            report = query_text(c, f"CHECK TABLE {q} EXTENDED")
            (count,), = query_text(c, f"SELECT COUNT(*) FROM {q}{every}")
        except DRIVER_ERRORS as e:
            args = getattr(e, "args", ())
            return name, {"error": f"cannot check {q}: {args[-1] if args else e}"}
        problems = [str(text) for _, _, kind, text in report
                    if str(kind).lower() == "error"]
        status = [str(text) for _, _, kind, text in report if str(kind).lower() == "status"]
        if status[-1:] != ["OK"]:
            problems += status or ["CHECK TABLE gave no status"]
        return name, {"problems": problems, "rows": int(count)}

    n = max(1, min(threads or os.cpu_count() or 1, len(tables)))
    try:
        with errors_as(target, DOING), ThreadPoolExecutor(
                n, thread_name_prefix="snapkeep-check") as pool:
            out = dict(pool.map(check, sorted(tables)))
    finally:
        for c in conns:
            with contextlib.suppress(Exception):
                c.close()
    reporter.log(f"checked the {len(out)} tables stored as pages of {target.describe()} "
                 "(CHECK TABLE … EXTENDED, row counts)")
    return out


def compare_paged(description: dict[str, Any], found: dict[str, dict[str, Any]]
                  ) -> list[str]:
    """One line per table stored as pages not proven sound (empty: all are); a line
    saying ``not verifiable`` is not a mismatch."""
    lines: list[str] = []
    for name, table in sorted(paged(description).items()):
        q, got = quote_ident(name), found.get(name)
        want = table["physical"].get("rows")
        if got is None:
            lines.append(f"table {q}: in the snapshot but missing from the restored copy")
        elif got.get("error"):
            lines.append(f"table {q}: {got['error']}")
        elif got["problems"]:
            lines.append(f"table {q}: CHECK TABLE … EXTENDED of the pages restored found: "
                         + "; ".join(got["problems"]))
        elif want is None:
            lines.append(f"table {q}: pages restored and checked; {PAGES_NOT_VERIFIABLE}")
        elif want != got["rows"]:
            lines.append(f"table {q}: {got['rows']} rows in the restored copy, {want} in the "
                         "snapshot's pages")
    return lines
