"""ENUM/SET members and literal DEFAULTs with characters outside the BMP, read exactly.

Why: MariaDB (10.11) prints table metadata through utf8mb3, so ``SHOW CREATE TABLE`` and
``information_schema.COLUMNS`` show every 4-byte character (an emoji) of an ENUM/SET
member or of a CHAR/VARCHAR/ENUM/SET column's literal ``DEFAULT`` as ``?``, whatever
``character_set_results`` is (utf8mb4, utf16, utf32, binary all get the ``?``). The
table itself keeps the real characters (values and defaults hold them), so a table
recreated from the printed statement gets ``?`` members and its values become ``?``:
data loss. A ``CHARACTER SET binary`` ENUM loses every byte over 0x7F the same way.
What else was checked on 10.11:

- printed exactly by ``SHOW CREATE TABLE``: CHECK constraints, generated column
  expressions, expression defaults (and TEXT/BLOB defaults, kept as expressions),
  partition values (printed as hex), and view, trigger, routine and event bodies (their
  ``SHOW CREATE``). ``information_schema`` CHECK_CLAUSE / GENERATION_EXPRESSION /
  COLUMN_DEFAULT show ``?`` there, but nothing reads them for DDL.
- COMMENTs of columns, indexes, partitions, tables, sequences, routines, events and the
  database, and a function's ``RETURNS enum(…)``: the server itself stores them as ``?``
  at CREATE (the ``.frm`` / ``mysql.proc`` hold ``?``): nothing is lost by a dump and
  nothing can be recovered, so nothing is said.

So, only where needed (a column of a charset that can hold such bytes whose printed type
or default holds ``?``, found with one ``information_schema`` query per dump), the exact
bytes are read without going through metadata text: a temporary table copies the column
(``CREATE TEMPORARY TABLE … SELECT col FROM t LIMIT 0`` copies its type and default as
stored, and reads no row), is filled with member indexes (ENUM 1..n, SET 1, 2, 4, …) and
a default row, and ``HEX()`` reads them back; the member list and the default literal of
that column in the saved statement are rewritten with them, escaped as the server writes
them. The temporary table lives in the dump's coordinator session (before any snapshot
transaction or lock), in no database file, and is dropped at once; the session's binary
log is switched off for it where the user may (a replica would only replay a harmless
temporary table otherwise). A column that cannot be read so (e.g. no CREATE TEMPORARY
TABLES privilege) keeps its printed text, with a ``warning:`` naming it.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

import pymysql

from snapkeep.engines.mysql.connect import Connection, error_code, query, query_text, quote_ident
from snapkeep.engines.mysql.ddl import first_paren, scan, skip_quoted, top_level
from snapkeep.progress import Reporter

# Charsets with characters utf8mb3 cannot print (binary: any byte over 0x7F).
WIDE_CHARSETS = ("utf8mb4", "utf16", "utf16le", "utf32", "binary")
_TEMP = "snapkeep_exact_members"
_LOST_CONNECTION = frozenset([2006, 2013])  # CR_SERVER_GONE_ERROR, CR_SERVER_LOST
_MEMBER_LIST = re.compile(r"\s*(enum|set)\(", re.IGNORECASE)


@dataclass(frozen=True)
class Suspect:
    """A column whose printed members or default may have lost characters."""

    column: str
    data_type: str  # enum, set, char, varchar
    charset: str
    members: bool  # ENUM/SET whose printed type holds '?'
    default: bool  # a literal default printed with '?'


def suspects(conn: Connection, db: str) -> dict[str, list[Suspect]]:
    """Suspect columns by table: a cheap query, nothing when no table needs the rest."""
    marks = ", ".join(["%s"] * len(WIDE_CHARSETS))
    rows = query_text(
        conn, "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, "
              "COLUMN_TYPE LIKE %s, COALESCE(COLUMN_DEFAULT LIKE %s, 0) "
              "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
              f"AND CHARACTER_SET_NAME IN ({marks}) AND DATA_TYPE IN ('enum', 'set', 'char', "
              "'varchar') AND (COLUMN_TYPE LIKE %s OR COLUMN_DEFAULT LIKE %s) "
              "ORDER BY TABLE_NAME, ORDINAL_POSITION",
        ("%?%", "'%?%'", db, *WIDE_CHARSETS, "%?%", "'%?%'"))
    out: dict[str, list[Suspect]] = {}
    for table, column, data_type, charset, printed_type, printed_default in rows:
        lost_members = bool(int(printed_type)) and data_type in ("enum", "set")
        lost_default = bool(int(printed_default))
        if lost_members or lost_default:
            out.setdefault(table, []).append(
                Suspect(column, data_type, charset, lost_members, lost_default))
    return out


def exact_ddl(conn: Connection, table: str, ddl: str, columns: list[Suspect],
              reporter: Reporter) -> str:
    """``ddl`` (the table's ``SHOW CREATE TABLE``) with the exact members and default of
    each suspect column; a column that cannot be read keeps its text, with a warning."""
    for col in columns:
        where = f"column {quote_ident(col.column)} of table {quote_ident(table)}"
        span = _column_span(ddl, col.column)
        if span is None:
            reporter.log(f"warning: {where}: its definition is not found in SHOW CREATE "
                         f"TABLE; characters the server prints as '?' stay '?'")
            continue
        start, end = span
        item = ddl[start:end]
        try:
            fixed = _fix_column(conn, table, col, item)
        except pymysql.MySQLError as e:
            if error_code(e) in _LOST_CONNECTION:
                raise
            reporter.log(f"warning: {where}: the server prints characters of its "
                         f"{'members' if col.members else 'default'} as '?' and they could "
                         f"not be read exactly ({e.args[-1]}); a restore gets '?' there")
            continue
        except ValueError as e:
            reporter.log(f"warning: {where}: {e}; characters the server prints as '?' "
                         f"stay '?' in a restore")
            continue
        ddl = ddl[:start] + fixed + ddl[end:]
    return ddl


def _column_span(ddl: str, column: str) -> tuple[int, int] | None:
    """Where the definition of ``column`` is in ``ddl`` (start, end), or None."""
    open_at = first_paren(ddl)
    if open_at < 0:
        return None
    try:
        spans = scan(ddl, open_at)[:-1]
    except ValueError:
        return None
    name = quote_ident(column)
    for a, b in spans:
        text = ddl[a:b]
        stripped = text.lstrip()
        if stripped.startswith(name) and stripped[len(name):len(name) + 1].isspace():
            return a + len(text) - len(stripped), b
    return None


def _fix_column(conn: Connection, table: str, col: Suspect, item: str) -> str:
    """The column definition ``item`` with the exact members and default read back."""
    after = len(quote_ident(col.column))
    list_span = _member_list(item, after) if col.members else None
    default_span = _default_literal(item) if col.default else None
    if col.members and list_span is None:
        raise ValueError(f"its {col.data_type.upper()} member list cannot be parsed")
    if list_span is None and default_span is None:
        return item
    n = _count_members(item, list_span) if list_span else 0
    members, default = _read_exact(conn, table, col, n, default_span is not None)
    binary = col.charset == "binary"
    edits: list[tuple[tuple[int, int], str]] = []
    if list_span:
        edits.append((list_span, "(" + ",".join(_literal(m, binary) for m in members) + ")"))
    if default_span and default is not None:
        edits.append((default_span, _literal(default, binary)))
    for (a, b), new in sorted(edits, reverse=True):  # from the end: earlier spans stay valid
        item = item[:a] + new + item[b:]
    return item


def _member_list(item: str, at: int) -> tuple[int, int] | None:
    """(start, end) of ``(…)`` after ``enum``/``set`` following the column name."""
    m = _MEMBER_LIST.match(item, at)
    if not m:
        return None
    start = m.end() - 1
    i = start + 1
    while i < len(item):
        if item[i] != "'":
            return None
        i = skip_quoted(item, i)
        if i < len(item) and item[i] == ",":
            i += 1
            continue
        return (start, i + 1) if i < len(item) and item[i] == ")" else None
    return None


def _count_members(item: str, span: tuple[int, int]) -> int:
    i, n = span[0] + 1, 0
    while i < span[1] - 1:
        i = skip_quoted(item, i) + 1
        n += 1
    return n


def _default_literal(item: str) -> tuple[int, int] | None:
    """(start, end) of the quoted literal after a top-level ``DEFAULT``, or None."""
    top = top_level(item)  # quoted tokens and parenthesised groups blanked out
    for m in re.finditer(r"\bDEFAULT\b", top, re.IGNORECASE):
        i = m.end()
        while i < len(item) and item[i].isspace():
            i += 1
        if i < len(item) and item[i] == "'":
            return i, skip_quoted(item, i)
    return None


def _read_exact(conn: Connection, table: str, col: Suspect, n: int, with_default: bool
                ) -> tuple[list[bytes], bytes | None]:
    """The ``n`` members' bytes and the default's bytes (utf8mb4; binary as stored)."""
    tmp, name = quote_ident(_TEMP), quote_ident(col.column)
    hexed = ("HEX({})" if col.charset == "binary"
             else "HEX(CONVERT({} USING utf8mb4))")
    with contextlib.suppress(pymysql.MySQLError):  # needs SUPER/BINLOG ADMIN; harmless
        query(conn, "SET SESSION sql_log_bin = 0")
    query(conn, f"DROP TEMPORARY TABLE IF EXISTS {tmp}")
    query(conn, f"CREATE TEMPORARY TABLE {tmp} SELECT {name} FROM {quote_ident(table)} "
                f"LIMIT 0")
    try:
        members: list[bytes] = []
        if n:
            values = range(1, n + 1) if col.data_type == "enum" else (1 << i for i in range(n))
            query(conn, f"INSERT INTO {tmp} VALUES " + ", ".join(f"({v})" for v in values))
            rows = query(conn, f"SELECT {name} + 0, {hexed.format(name)} FROM {tmp} "
                               f"ORDER BY 1")
            members = [bytes.fromhex(_str(h)) for _, h in rows]
            if len(members) != n:
                raise ValueError(f"{len(members)} of its {n} members could be read")
        default = None
        if with_default:
            query(conn, f"DELETE FROM {tmp}")
            query(conn, f"INSERT INTO {tmp} VALUES (DEFAULT)")
            (h,), = query(conn, f"SELECT {hexed.format(f'DEFAULT({name})')} FROM {tmp}")
            default = None if h is None else bytes.fromhex(_str(h))
        return members, default
    finally:
        query(conn, f"DROP TEMPORARY TABLE IF EXISTS {tmp}")
        with contextlib.suppress(pymysql.MySQLError):
            query(conn, "SET SESSION sql_log_bin = 1")


def _str(value: bytes | str) -> str:
    return value.decode("ascii") if isinstance(value, bytes | bytearray) else value


_ESCAPES = {"\\": "\\\\", "'": "''", "\n": "\\n", "\r": "\\r", "\0": "\\0"}


def _literal(value: bytes, binary: bool) -> str:
    """A string literal as ``SHOW CREATE TABLE`` writes one (sql_mode without
    NO_BACKSLASH_ESCAPES, which the restore and export sessions use); bytes that are not
    UTF-8 text (a binary ENUM) as a hex literal."""
    if binary and not value.isascii():
        return "X'" + value.hex().upper() + "'"
    text = value.decode("utf-8") if not binary else value.decode("ascii")
    return "'" + "".join(_ESCAPES.get(c, c) for c in text) + "'"
