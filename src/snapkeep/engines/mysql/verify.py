"""Recomputing a snapshot's row digests from a database, for a restore drill.

``table_digests`` reads every table of ``target.database`` (a scratch copy the drill
restored) the way the dump reads it — the same columns and codecs, each table in the
encoding its recorded digest was computed over — on ``threads`` connections, and returns
one digest per table in the form recorded in the description (``digest.py``). Nothing is
written anywhere. ``compare_digests`` says, one line per table, what differs. Tables the
snapshot stored as pages carry no digest and are left to ``verify_pages.py``.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any

from snapkeep.engines.mysql import schema
from snapkeep.engines.mysql.backup_lock import Server
from snapkeep.engines.mysql.connect import (
    DRIVER_ERRORS,
    StreamReader,
    connect,
    connect_stream,
    errors_as,
    query_text,
    quote_ident,
)
from snapkeep.engines.mysql.digest import ALGORITHM, MIXED, LineDigest, by_encoding
from snapkeep.engines.mysql.dump_sql import DUMP_SESSION, dumped_columns
from snapkeep.engines.mysql.encoding import (
    ESCAPED,
    QUOTED,
    Column,
    encode_rows,
    join_lines,
    quoted_line_expr,
)
from snapkeep.engines.mysql.ranges import select_sql
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.engines.mysql.workers import FETCH_ROWS, PUMP_BLOCK
from snapkeep.progress import Reporter

DOING = "reading the restored copy's rows"
NOT_VERIFIABLE = "not verifiable (snapshot predates digests)"


def table_digests(target: MySQLTarget, description: dict[str, Any], reporter: Reporter, *,
                  threads: int | None = None) -> dict[str, dict[str, Any]]:
    """``{table: {"algorithm", "encoding", "rows", "sum"}}`` of every table of
    ``target.database``, comparable with ``description["tables"][i]["digest"]``.

    A table whose recorded digest mixes encodings gets ``"encoding": "mixed"`` with its
    row count and ``"sum": None`` (its parts' split is not recorded, see ``digest.py``);
    a table that cannot be read the recorded way gets an ``"error"``. Raises
    ServiceUnavailable/PermissionDenied (naming the target) for server errors.
    """
    jobs = _jobs(target, description)
    out: dict[str, dict[str, Any]] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            reader = StreamReader(connect_stream(target, doing=DOING))
        except BaseException as e:  # noqa: BLE001 - raised by the calling thread
            errors.append(e)
            return
        try:
            reader.execute(DUMP_SESSION)
            reader.execute("SET SESSION character_set_results = binary")
            while True:
                try:
                    name, cols, encoding, every = jobs.get_nowait()
                except queue.Empty:
                    return
                result = _digest_table(reader, name, cols, encoding, every)
                with lock:
                    out[name] = result
        except BaseException as e:  # noqa: BLE001 - raised by the calling thread
            errors.append(e)
        finally:
            reader.close()

    n = max(1, min(threads or os.cpu_count() or 1, jobs.qsize()))
    workers = [threading.Thread(target=work, name=f"snapkeep-verify-{i}", daemon=True)
               for i in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        with errors_as(target, DOING):
            raise errors[0]
    reporter.log(f"computed the row digests of {len(out)} tables of {target.describe()}")
    return dict(sorted(out.items()))

# A table to digest: (name, its columns, the encoding of its recorded digest, whether it
# covers every row version of a system-versioned table)
_Job = tuple[str, list[Column], str, bool]


def _jobs(target: MySQLTarget, description: dict[str, Any]) -> queue.Queue[_Job]:
    """Every table of ``target.database``, to be read as the snapshot's was dumped (a
    table the snapshot lacks: as a dump would read it now)."""
    db = target.database
    recorded = {t["name"]: t for t in description.get("tables", [])}
    conn = connect(target, raw=True, doing=DOING)
    try:
        with errors_as(target, DOING):
            version = query_text(conn, "SELECT VERSION()")[0][0]
            found = [name for name, kind, _, _ in schema.list_tables(conn, db)
                     if kind not in ("VIEW", "SEQUENCE")]
            columns = dumped_columns(conn, db, Server.parse(version), quoted=True)
    finally:
        conn.close()
    jobs: queue.Queue[_Job] = queue.Queue()
    for name in found:
        table = recorded.get(name)
        if table is not None and "physical" in table:
            continue  # stored as pages, without a digest: verify_pages.py checks it
        cols = ([Column.from_json(c) for c in table["columns"]] if table is not None
                else columns.get(name, []))
        digest = (table or {}).get("digest") or {}
        # a system-versioned table's digest covers every row version, as dumped
        every = bool(((table or {}).get("system_time") or {}).get("history"))
        jobs.put((name, cols, digest.get("encoding", ESCAPED), every))
    return jobs


def _digest_table(reader: StreamReader, name: str, columns: list[Column], encoding: str,
                  all_versions: bool = False) -> dict[str, Any]:
    """One table's digest, read in ``encoding`` (``mixed``: counted in escaped lines);
    ``all_versions``: a system-versioned table's history rows too."""
    read_as = QUOTED if encoding == QUOTED else ESCAPED
    digest = LineDigest(read_as)
    if not columns:
        return _result(encoding, digest)
    exprs = ([quoted_line_expr(columns)] if read_as == QUOTED else
             [c.select_expr() for c in columns])
    sql = select_sql(name, exprs, [], all_versions=all_versions)
    try:
        if read_as == ESCAPED and reader.pumps:
            for _ in reader.pump(sql, PUMP_BLOCK, digest.impl):
                pass
        else:
            for batch in reader.stream(sql, FETCH_ROWS):
                data = join_lines(batch) if read_as == QUOTED else encode_rows(batch)
                if data is None:
                    return {"algorithm": ALGORITHM, "encoding": encoding, "rows": None,
                            "sum": None, "error": "a row is longer than max_allowed_packet "
                                                  "as one quoted line"}
                if data:
                    digest.update(data)
    except DRIVER_ERRORS as e:
        args = getattr(e, "args", ())
        return {"algorithm": ALGORITHM, "encoding": encoding, "rows": None, "sum": None,
                "error": f"cannot read {quote_ident(name)}: {args[-1] if args else e}"}
    return _result(encoding, digest)


def _result(encoding: str, digest: LineDigest) -> dict[str, Any]:
    total = digest.sum()
    if encoding == MIXED:
        return {"algorithm": ALGORITHM, "encoding": MIXED, "rows": total.rows, "sum": None}
    return {"algorithm": ALGORITHM, "encoding": encoding, **total.to_json()}


def compare_digests(description: dict[str, Any], found: dict[str, dict[str, Any]]
                    ) -> list[str]:
    """Human-readable lines for every table whose rows are not proven identical: a
    different count or digest, a table missing on either side, or one whose recorded
    digest cannot be checked (``NOT_VERIFIABLE``; mixed encodings). Empty: identical."""
    lines: list[str] = []
    recorded = {t["name"]: t for t in description.get("tables", [])
                if "physical" not in t}  # stored as pages: compare_paged's
    for name in sorted(set(recorded) | set(found)):
        q = quote_ident(name)
        if name not in found:
            lines.append(f"table {q}: in the snapshot but missing from the restored copy")
            continue
        if name not in recorded:
            lines.append(f"table {q}: in the restored copy but not in the snapshot")
            continue
        want, got = recorded[name].get("digest"), found[name]
        if got.get("error"):
            lines.append(f"table {q}: {got['error']}")
        elif not want:
            lines.append(f"table {q}: {NOT_VERIFIABLE}")
        elif want.get("algorithm") != got.get("algorithm"):
            lines.append(f"table {q}: not verifiable (digest algorithm "
                         f"{want.get('algorithm')!r}, this snapkeep computes "
                         f"{got.get('algorithm')!r})")
        elif want["rows"] != got["rows"]:
            lines.append(f"table {q}: {got['rows']} rows in the restored copy, "
                         f"{want['rows']} in the snapshot")
        elif want.get("encoding") == MIXED:
            if want["rows"]:
                lines.append(f"table {q}: row count matches; digest not verifiable (its "
                             f"parts were dumped in {'/'.join(by_encoding(want))} lines)")
        elif want["rows"] and (want["encoding"], want["sum"]) != (got["encoding"], got["sum"]):
            lines.append(f"table {q}: the rows differ (digest {got['sum']} of the restored "
                         f"copy's {got['encoding']} lines, {want['sum']} recorded)")
    return lines
