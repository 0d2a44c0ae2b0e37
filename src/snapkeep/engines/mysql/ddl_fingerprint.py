"""Which paged tables' definitions changed during a live physical snapshot.

A live snapshot records each table's DDL (``SHOW CREATE TABLE``) when the logical dump
starts, before mariadb-backup reaches its ``BACKUP STAGE BLOCK_DDL``: an ``ALTER`` of a
paged table committed in between leaves a recorded DDL its pages do not match (IMPORT
TABLESPACE refuses it). Reading the DDL again at the ``BLOCK_COMMIT`` stop can deadlock
(an ``ALTER`` waiting for the backup lock holds a metadata lock), so the check reads
InnoDB's own dictionary instead (``information_schema.INNODB_SYS_*``: no metadata lock;
checked on MariaDB 10.11 while an ``ALTER`` waited for the backup lock) and compares a
fingerprint of each table taken around the DDL read with one taken at the point.

What the fingerprint sees is what IMPORT checks: InnoDB's columns, indexes and their
fields, and the table's id (a rebuild gives a new one); and the bytes of the table's
``.frm`` in the data directory, for a change only the server's ``.frm`` holds (a comment,
a column's default: no failed import, but a restore with the wrong default). An ``ALTER``
puts its new ``.frm`` in place by a rename, so a read sees the old or the new one whole.

A table whose fingerprint at the point differs from the one around the DDL read has its
DDL read again once mariadb-backup is done (``settle``): kept when the dictionary then is
still the point's, otherwise the snapshot fails (``DDLChanged``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from snapkeep.engines.mysql import members, schema, versioning
from snapkeep.engines.mysql.connect import Connection, query_text, quote_ident
from snapkeep.engines.mysql.schema import DDLChanged
from snapkeep.progress import Reporter

# each view's rows for the tables 'db/%', by the table's NAME, in a stable order
_SQL = {
    "table": "SELECT t.NAME, t.TABLE_ID, t.FLAG, t.N_COLS, t.SPACE "
             "FROM information_schema.INNODB_SYS_TABLES t WHERE t.NAME LIKE %s",
    "column": "SELECT t.NAME, c.POS, c.NAME, c.MTYPE, c.PRTYPE, c.LEN "
              "FROM information_schema.INNODB_SYS_COLUMNS c "
              "JOIN information_schema.INNODB_SYS_TABLES t USING (TABLE_ID) "
              "WHERE t.NAME LIKE %s ORDER BY t.NAME, c.POS",
    "index": "SELECT t.NAME, i.INDEX_ID, i.NAME, i.TYPE, i.N_FIELDS "
             "FROM information_schema.INNODB_SYS_INDEXES i "
             "JOIN information_schema.INNODB_SYS_TABLES t USING (TABLE_ID) "
             "WHERE t.NAME LIKE %s ORDER BY t.NAME, i.INDEX_ID",
    "field": "SELECT t.NAME, f.INDEX_ID, f.POS, f.NAME "
             "FROM information_schema.INNODB_SYS_FIELDS f "
             "JOIN information_schema.INNODB_SYS_INDEXES i USING (INDEX_ID) "
             "JOIN information_schema.INNODB_SYS_TABLES t ON t.TABLE_ID = i.TABLE_ID "
             "WHERE t.NAME LIKE %s ORDER BY t.NAME, f.INDEX_ID, f.POS",
}


def fingerprints(conn: Connection, db_file: str, files: Iterable[str],
                 frm_dir: Path | None = None) -> dict[str, str]:
    """file name → a hash of that table's InnoDB dictionary definition, for the tables of
    the database directory ``db_file`` named in ``files`` (a table not there is absent),
    and of its ``.frm`` in ``frm_dir`` (the database's directory in the data directory)."""
    wanted = set(files)
    like = db_file.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "/%"
    parts: dict[str, list[str]] = {}
    for kind, sql in _SQL.items():
        for row in query_text(conn, sql, (like,)):
            file = str(row[0]).split("/", 1)[1]
            if file in wanted:
                # as text: raw and plain connections give the numbers as str and int
                parts.setdefault(file, []).append(f"{kind}:{[str(v) for v in row[1:]]!r}")
    if frm_dir is not None:
        for file, p in parts.items():
            p.append(f"frm:{_file_hash(frm_dir / f'{file}.frm')}")
    return {file: hashlib.sha256("\n".join(p).encode()).hexdigest()
            for file, p in parts.items()}


def _file_hash(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "-"  # between a rename's two steps, or dropped: differs from any .frm


def changed(files: dict[str, str], read_at: dict[str, str | None],
            at_point: dict[str, str | None]) -> list[str]:
    """The tables of ``files`` (name → file) whose definition at the point may not be the
    one read (``read_at`` None: it changed during the read itself)."""
    return [name for name in files
            if read_at.get(name) is None or read_at[name] != at_point.get(name)]


def settle(conn: Connection, db: str, db_file: str, description: dict[str, Any],
           files: dict[str, str], at_point: dict[str, str | None],
           reporter: Reporter, frm_dir: Path | None = None) -> None:
    """Read again the DDL of the tables ``files`` (name → file; ``conn`` in the dump's
    session, mariadb-backup's stages released) into ``description``, each proved to be
    the point's by its fingerprint read before and after equal to the point's;
    ``DDLChanged`` for the first that is not."""
    by_name = {t["name"]: t for t in description["tables"]}
    suspects = members.suspects(conn, db)
    pks = schema.primary_keys(conn, db)
    for name, file in files.items():
        point = at_point.get(name)
        before = fingerprints(conn, db_file, [file], frm_dir).get(file)
        create = schema.table_ddl(conn, name) if point is not None and before == point else ""
        if not create or fingerprints(conn, db_file, [file], frm_dir).get(file) != point:
            raise DDLChanged(name)
        t = by_name[name]
        if ("system_time" in t) != ("WITH SYSTEM VERSIONING" in create.upper()):
            raise DDLChanged(name)  # its kind changed: not only its DDL
        if name in suspects:  # 4-byte characters the statement prints as '?'
            create = members.exact_ddl(conn, name, create, suspects[name], reporter)
        t["create"], t["order_by"] = create, pks.get(name, [])
        if "system_time" in t:  # as dump._table records it
            period = versioning.read(conn, db, name, create)
            t["system_time"] = period.to_json()
            if period.history and t["order_by"] and period.end not in t["order_by"]:
                t["order_by"] = [*t["order_by"], period.end]
        reporter.log(f"table {quote_ident(name)}: a DDL statement changed it during the live "
                     "snapshot before mariadb-backup's point; its DDL was read again after "
                     "(the definition its pages have)")
