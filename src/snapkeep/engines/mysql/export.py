"""A snapshot's database as one SQL script that the stock ``mariadb``/``mysql`` client loads.

``export_sql`` writes, for an empty database selected on the command line (the script
has no CREATE DATABASE or USE), what a restore builds (``restore.py``) and in the same
way, so the result compares equal to a restore (``CHECKSUM TABLE … EXTENDED``, row
counts, ``SHOW CREATE`` of every object):

1. a mariadb-dump-like header: the session's settings saved and set (utf8mb4,
   ``time_zone '+00:00'`` as the dump read TIMESTAMPs, unique and foreign key checks off,
   the restore's ``sql_mode``, notes off), the database's charset and collation;
2. every table from its saved CREATE statement without the keys a restore adds after the
   rows (``ddl.py``), and the sequences with their next value;
3. each table's rows as multi-row INSERTs of about ``STATEMENT_BYTES`` naming the dumped
   columns (generated ones are left to the server), values exact (``export_values.py``),
   then its deferred keys and AUTO_INCREMENT counter; the foreign keys once every table
   is loaded;
4. routines, views (in dependency order), triggers (after the rows, so they do not fire)
   and events, each in its saved session context (``export_objects.py``); the database
   comment; the session put back, and a last comment line marking a complete script.

A system-versioned table's rows are every version with its period columns named in the
INSERTs; the script then sets ``system_versioning_insert_history = 1`` after its header,
so a server older than MariaDB 10.11 stops at that line (unknown variable) instead of
loading the history as current rows. A server whose ``secure_timestamp`` forbids it
ignores the given periods with a warning only: load such a script where it is ``NO``.

Rows stream from the repository chunk by chunk (each hash-checked as it is read:
``IntegrityError`` propagates), so memory stays bounded by a chunk, a statement and the
longest row, whatever the table sizes. Progress is reported in stored row bytes, as a
restore reports it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from snapkeep.engines.mysql import versioning
from snapkeep.engines.mysql.connect import quote_ident
from snapkeep.engines.mysql.ddl import split_create_table
from snapkeep.engines.mysql.descriptions import check_readable, physical_tables
from snapkeep.engines.mysql.encoding import QUOTED, STRING, TEXT, Column
from snapkeep.engines.mysql.export_objects import (
    DEFAULTS,
    LOAD_SQL_MODE,
    alter_database,
    create_objects,
    statement,
)
from snapkeep.engines.mysql.export_values import (
    BINARY,
    INTRODUCED,
    rows_converter,
    splitter_for,
)
from snapkeep.engines.mysql.physical_rows import rows_of_pages
from snapkeep.engines.mysql.shadow_load import RowPart, row_parts
from snapkeep.engines.seams import BlobSource
from snapkeep.errors import RepositoryError
from snapkeep.progress import Reporter

STATEMENT_BYTES = 1 << 20
CLIENT_PACKET_BYTES = 16 << 20  # the client's and the server's default max_allowed_packet
COMPLETE = b"-- snapkeep export complete\n"

_HEADER = (
    "SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT, "
    "@OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS, "
    "@OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION, @OLD_TIME_ZONE=@@TIME_ZONE, "
    "@OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, "
    "@OLD_SQL_MODE=@@SQL_MODE, @OLD_SQL_NOTES=@@SQL_NOTES;\n"
    f"SET NAMES utf8mb4, TIME_ZONE='+00:00', UNIQUE_CHECKS=0, FOREIGN_KEY_CHECKS=0, "
    f"SQL_MODE='{LOAD_SQL_MODE}', SQL_NOTES=0;\n")
_FOOTER = (
    b"SET TIME_ZONE=@OLD_TIME_ZONE, UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS, "
    b"FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS, SQL_MODE=@OLD_SQL_MODE, "
    b"SQL_NOTES=@OLD_SQL_NOTES;\n"
    b"SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT, "
    b"CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS, "
    b"COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION;\n")


# Rows of system-versioned tables carry their exact ROW_START/ROW_END (``versioning.py``).
_HISTORY_ON = (b"SET @OLD_SYSTEM_VERSIONING_INSERT_HISTORY=@@SYSTEM_VERSIONING_INSERT_HISTORY, "
               b"SYSTEM_VERSIONING_INSERT_HISTORY=1;\n")
_HISTORY_OFF = b"SET SYSTEM_VERSIONING_INSERT_HISTORY=@OLD_SYSTEM_VERSIONING_INSERT_HISTORY;\n"


def export_sql(description: dict[str, Any], repo: BlobSource, out: BinaryIO,
               reporter: Reporter) -> None:
    """Write the snapshot's database (its manifest description, ``dump.py``) to ``out`` as
    an uncompressed SQL script (see the module doc), in pieces.

    Raises RepositoryError for a description this snapkeep cannot read or rows that do not
    match it, IntegrityError for damaged data; ``out``'s own errors propagate. A snapshot
    taken physically has its pages read back as rows first (``physical_rows.py``).
    """
    check_readable(description, "export",
                   "; use the snapkeep version that created the snapshot", pages=True)
    if physical_tables(description):
        with tempfile.TemporaryDirectory(prefix="snapkeep-rows-") as work:
            rows, source = rows_of_pages(description, repo, Path(work), reporter)
            _export(rows, source, out, reporter)
        return
    _export(description, repo, out, reporter)


def _export(description: dict[str, Any], repo: BlobSource, out: BinaryIO,
            reporter: Reporter) -> None:
    d = description
    tables = d["tables"]
    reporter.add_total(sum(p.size for t in tables for p in row_parts(t)))
    about = f"{quote_ident(d['database'])} ({d.get('server_version', 'unknown server')})"
    out.write(f"-- snapkeep export of the database {' '.join(about.splitlines())}\n"
              "-- Load it into an empty database with the mariadb or mysql client, e.g.\n"
              "--   zstd -dc database.sql.zst | mariadb new_database\n\n".encode())
    out.write(_HEADER.encode())
    history = bool(versioning.with_history(tables))
    if history:  # an older server stops the script here (unknown variable), loudly
        out.write(_HISTORY_ON)
    out.write(alter_database(d["charset"], d["collation"]))
    splits = {t["name"]: split_create_table(t["name"], t["create"]) for t in tables}
    for t in tables:
        out.write(statement(splits[t["name"]].load_ddl))
    for seq in d.get("sequences", []):
        out.write(statement(seq["create"])
                  + f"DO SETVAL({quote_ident(seq['name'])}, {int(seq['next_value'])}, 0);\n"
                  .encode())
    rows = longest = 0
    late: list[str] = []
    for t in tables:
        count, size = _export_table(t, repo, out, reporter)
        rows, longest = rows + count, max(longest, size)
        split = splits[t["name"]]
        statements = [s for s in [split.alter(split.keys)] if s]
        if t.get("auto_increment") is not None:
            statements.append(f"ALTER TABLE {quote_ident(t['name'])} AUTO_INCREMENT = "
                              f"{int(t['auto_increment'])}")
        for sql in statements:
            out.write(statement(sql))
        fk_sql = split.alter(split.foreign)
        if fk_sql:
            late.append(fk_sql)
    for sql in late:
        out.write(statement(sql))
    for objects_sql in create_objects(d):
        out.write(objects_sql)
    out.write((_HISTORY_OFF if history else b"") + _FOOTER + COMPLETE)
    if longest > CLIENT_PACKET_BYTES:
        reporter.log(f"warning: the longest INSERT statement has {longest >> 20} MiB (a row "
                     f"that long): load the script with mariadb --max-allowed-packet="
                     f"{(longest >> 20) + 2}M and the server's max_allowed_packet at least that")
    reporter.log(f"exported {len(tables)} tables ({rows} rows), {len(d.get('sequences', []))} "
                 f"sequences, {len(d.get('views', []))} views, {len(d.get('routines', []))} "
                 f"routines, {len(d.get('triggers', []))} triggers and "
                 f"{len(d.get('events', []))} events of {quote_ident(d['database'])} as SQL")


def _export_table(table: dict[str, Any], repo: BlobSource, out: BinaryIO,
                  reporter: Reporter) -> tuple[int, int]:
    """INSERT statements for one table's rows; (rows, bytes of the longest statement)."""
    columns = [Column.from_json(c) for c in table["columns"]]
    parts = [p for p in row_parts(table) if p.size]
    if not columns or not parts:
        reporter.advance(sum(p.size for p in parts))  # rows without columns: nothing to load
        return 0, 0
    name = table["name"]
    head = (f"INSERT INTO {quote_ident(name)} ("
            + ",".join(quote_ident(c.name) for c in columns) + ") VALUES\n").encode("utf-8")
    # Under SET NAMES binary a plain '…' is a binary string, but identifiers would be
    # bytes too: a table or column named in other than ASCII keeps utf8mb4 and _binary'…'.
    binary = head.isascii()
    opening = BINARY if binary else INTRODUCED
    raw_inside = _may_hold_raw_separators(table, parts, columns, repo)
    inserts = _Inserts(out, head)
    if binary:
        out.write(b"SET NAMES binary;\n")
    rows = 0
    for part in parts:
        convert = rows_converter(part.encoding, columns, opening)
        splitter = splitter_for(part.encoding, raw_inside)
        for chunk in repo.open_blob(part.ref).iter_chunks():
            block = splitter.feed(chunk)
            if block:
                rows += block.count(b"\n")
                inserts.add(convert(block))
            reporter.advance(len(chunk))
        if splitter.leftover:
            raise RepositoryError(f"the stored rows of table {quote_ident(name)} end in the "
                                  f"middle of a row: the snapshot's row data is damaged")
    inserts.close()
    if binary:
        out.write(DEFAULTS)
    expected = table.get("row_count")
    if expected is not None and rows != int(expected):
        raise RepositoryError(f"table {quote_ident(name)}: {rows} rows exported, the snapshot "
                              f"has {expected}; the snapshot's row data is damaged")
    reporter.log(f"exported table {quote_ident(name)}: {rows} rows in {inserts.statements} "
                 f"INSERT statements")
    return rows, inserts.longest


def _may_hold_raw_separators(table: dict[str, Any], parts: list[RowPart],
                             columns: list[Column], repo: BlobSource) -> bool:
    """Whether a quoted string of the table may hold a raw newline or tab (QUOTE() leaves
    them as they are). Only then must lines be split by following the quotes, which is
    slower; each row holds exactly one newline and one tab fewer than it has fields
    otherwise, so counting both over the stored rows (read once more) tells."""
    if not any(p.encoding == QUOTED for p in parts):
        return False
    if not any(c.codec in (STRING, TEXT) for c in columns):
        return False
    expected = table.get("row_count")
    if expected is None:
        return True
    newlines = tabs = 0
    for part in parts:
        for chunk in repo.open_blob(part.ref).iter_chunks():
            newlines += chunk.count(b"\n")
            tabs += chunk.count(b"\t")
    rows = int(expected)
    return newlines != rows or tabs != rows * (len(columns) - 1)


class _Inserts:
    """VALUES rows (``(…)\\n,(…)``) gathered into INSERT statements of about
    ``STATEMENT_BYTES`` each, cut between rows."""

    def __init__(self, out: BinaryIO, head: bytes) -> None:
        self._out = out
        self._head = head
        self._pending: list[bytes] = []
        self._size = 0
        self.longest = 0
        self.statements = 0

    def add(self, rows: bytes) -> None:
        if rows:
            self._pending.append(rows)
            self._size += len(rows)
            if self._size >= STATEMENT_BYTES:
                self._write(final=False)

    def close(self) -> None:
        if self._pending:
            self._write(final=True)

    def _write(self, final: bool) -> None:
        data = self._pending[0] if len(self._pending) == 1 else b"\n,".join(self._pending)
        view = memoryview(data)
        start, n = 0, len(data)
        while start < n:
            cut = data.find(b"\n,(", start + STATEMENT_BYTES) if n - start > STATEMENT_BYTES else -1
            if cut < 0:
                if not final:
                    break
                cut = n
            self._out.write(self._head)
            self._out.write(view[start:cut])
            self._out.write(b";\n")
            self.longest = max(self.longest, len(self._head) + cut - start + 2)
            self.statements += 1
            start = cut + 2  # past "\n,"
        rest = data[start:] if start < n else b""
        self._pending = [rest] if rest else []
        self._size = len(rest)
