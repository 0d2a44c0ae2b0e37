"""The SQL a dump reads with: its session settings, which columns of a table are dumped,
the SELECT of a table's rows. Shared by the dump and the restore drill's digests
(``verify.py``), which must read a restored copy exactly as the dump read the original."""

from __future__ import annotations

from snapkeep.engines.mysql.backup_lock import Server
from snapkeep.engines.mysql.connect import Connection, query_text
from snapkeep.engines.mysql.encoding import Column, codec_for
from snapkeep.engines.mysql.ranges import select_sql

# Reading: no strictness, no CHAR padding; TIMESTAMPs exactly as stored (UTC).
DUMP_SESSION = ("SET SESSION sql_mode = '', time_zone = '+00:00', "
                "net_write_timeout = 3600, net_read_timeout = 3600")


def dumped_columns(conn: Connection, db: str, server: Server, *, quoted: bool = False
                   ) -> dict[str, list[Column]]:
    """The dumped columns of every table (generated ones left out), in table order."""
    out: dict[str, list[Column]] = {}
    for table, column, data_type in query_text(conn, columns_sql(server), (db,)):
        out.setdefault(table, []).append(Column(column, codec_for(data_type, quoted=quoted)))
    return out


def columns_sql(server: Server) -> str:
    """Non-generated columns of a schema. MariaDB says so in ``IS_GENERATED``; MySQL 8 has
    no such column: a generated column has a ``GENERATION_EXPRESSION`` there (``EXTRA``
    alone would also match ``DEFAULT_GENERATED``, an expression default). Invisible
    columns are listed by both and named explicitly in the SELECT, so they are dumped."""
    generated = ("IS_GENERATED = 'NEVER'" if server.mariadb else
                 "COALESCE(GENERATION_EXPRESSION, '') = ''")
    return ("SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = %s AND {generated} ORDER BY TABLE_NAME, ORDINAL_POSITION")


def select_rows_sql(table: str, columns: list[Column], order_by: list[str]) -> str:
    return select_sql(table, [c.select_expr() for c in columns], order_by)
