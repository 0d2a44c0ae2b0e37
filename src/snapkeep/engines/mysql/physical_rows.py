"""A physical snapshot's pages turned back into rows, for where pages cannot go: another
server, ``snapshot:export`` (docs/physical.md, "Restoring it logically").

The paged tables are imported into a private throwaway ``mariadbd`` of this machine
(``import_server.private_server``: no TCP, nothing else on it) exactly as a physical
restore places them (``physical_restore.import_tables``), then dumped from there by the
logical dump into scratch blobs beside the repository (``repository.ScratchBlobs``,
removed by the caller with its directory). The result is the snapshot's description with
those tables as rows (format 3, ``"engine": "physical"`` kept), readable through the
returned ``BlobSource``, which serves both the scratch blobs and the repository's.

It needs ``mariadbd`` here (not mariadb-backup) and the snapshot's InnoDB page size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snapkeep.engines.mysql.connect import connect, errors_as, query, query_text, quote_ident
from snapkeep.engines.mysql.cutover import create_db_sql
from snapkeep.engines.mysql.descriptions import physical_tables
from snapkeep.engines.mysql.dump import dump_database
from snapkeep.engines.mysql.import_server import private_server
from snapkeep.engines.mysql.physical_env import Locality
from snapkeep.engines.mysql.physical_restore import import_tables
from snapkeep.engines.seams import BlobSource
from snapkeep.errors import UsageError
from snapkeep.progress import Reporter
from snapkeep.repository import ScratchBlobs

DOING = "turning the snapshot's pages into rows"
ROW_KEYS = ("columns", "order_by", "parts", "row_count", "digest")


def rows_of_pages(description: dict[str, Any], repo: BlobSource, work: Path,
                  reporter: Reporter, *, threads: int = 2) -> tuple[dict[str, Any], BlobSource]:
    """(``description`` with its paged tables as rows, a source for its blobs); the
    scratch blobs and the private server live in ``work``, which the caller removes."""
    paged = physical_tables(description)
    if not paged:
        return description, repo
    d = description
    db = str(d["database"])
    blobs = ScratchBlobs(work / "blobs", repo)
    reporter.log(f"{len(paged)} tables of the snapshot are stored as pages: importing them "
                 "into a private server to read their rows")
    with private_server(work, db, reporter) as server:
        target = server.admin
        conn = connect(target, database=None, doing=DOING)
        try:
            with errors_as(target, DOING):
                datadir, page_size = query_text(conn,
                                                "SELECT @@datadir, @@innodb_page_size")[0]
                if int(page_size) != int(d.get("page_size", page_size)):
                    raise UsageError(f"the snapshot's pages are {d['page_size']} bytes, the "
                                     f"private server's {page_size}: it cannot read them")
                query(conn, create_db_sql(db, d["charset"], d["collation"]))
                conn.select_db(db)
                query(conn, "SET SESSION foreign_key_checks = 0, sql_mode = ''")
                for seq in d.get("sequences", []):  # DEFAULT nextval(seq) needs them
                    query(conn, seq["create"])
                tables = [t for t in d["tables"] if "physical" in t]
                for t in tables:
                    query(conn, t["create"])
        finally:
            conn.close()
        import_tables(target, db, Locality(Path(str(datadir)), int(page_size), None, None),
                      repo, tables, threads, reporter)
        with errors_as(target, DOING):
            conn = connect(target, doing=DOING)
            try:
                for seq in d.get("sequences", []):
                    query(conn, f"DROP SEQUENCE {quote_ident(seq['name'])}")
            finally:
                conn.close()
        rows = dump_database(target, blobs, reporter, threads=threads, writes_held=True)
    dumped = {t["name"]: t for t in rows["tables"]}
    out = dict(d)
    out["format"] = rows["format"]
    out["tables"] = [_as_rows(t, dumped[t["name"]]) if "physical" in t else t
                     for t in d["tables"]]
    return out, blobs


def _as_rows(table: dict[str, Any], dumped: dict[str, Any]) -> dict[str, Any]:
    t = {k: v for k, v in table.items() if k != "physical"}
    t.update({k: dumped[k] for k in ROW_KEYS if k in dumped})
    return t
