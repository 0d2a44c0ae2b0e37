"""The row encoding: what ``LOAD DATA`` reads back exactly, and how each column travels.

Rows are lines of tab-separated fields (``FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\'
LINES TERMINATED BY '\\n'``, ``CHARACTER SET binary``). A field is the value's raw bytes
with backslash, tab, newline, carriage return and NUL escaped; SQL NULL is ``\\N``.

Most columns travel as the server's text form (``SELECT col``), which reads back exactly.
A few need a *codec* (an expression on the way out, a ``SET`` on the way in):

- ``float``: the text protocol prints FLOAT with ~6 digits, so it leaves as
  ``CAST(col AS DOUBLE)`` (exact: every float is a double) and is stored back from that.
- ``bit``: BIT leaves as an integer (``col + 0``) and is stored back from it.
- ``text``: types from plugins (UUID, INET6, INET4) read binary input as their packed
  form, so their text form is loaded through ``CONVERT(@v USING utf8mb4)``.
- ``enum``/``set``: leave as their index/bitmask (``col + 0``) so an invalid ENUM value
  (index 0, shown as ``''``) and a real ``''`` member, or numeric-looking members, stay
  apart; stored back with ``CAST(@v AS UNSIGNED)``.
- ``period``: a system-versioned table's ROW START/END column, travelling as ``plain``
  (its text form); the codec of its own makes a snapkeep that predates it refuse the
  description instead of loading history rows as current ones (``versioning.py``).
Generated columns are not dumped (the server recomputes them); invisible columns are
named explicitly so they are.

**Two line encodings.** ``escaped`` (above; description formats 1 and 2): the server
sends each column as a field and Python escapes and joins them. ``quoted`` (format 3, on
MariaDB): the server composes the whole line itself, ``CONCAT(e1, '\\t', e2, …)``, so
Python handles one value per row instead of one per column (the dump's main cost). Each
non-string value is ``IFNULL(expr, '\\N')``; each string, binary, JSON or spatial value
(codec ``string``) is ``QUOTE(CAST(col AS BINARY))`` (guarded, see ``quoted_expr``) — the
raw bytes in single quotes with backslash, quote, NUL and Ctrl-Z escaped, or the bare
word ``NULL`` — which ``LOAD DATA …
OPTIONALLY ENCLOSED BY '\\''`` reads back exactly (raw tabs and newlines are safe inside
the quotes). A line longer than ``max_allowed_packet`` comes back as SQL NULL (``CONCAT``
is NULL when any argument is, and none is otherwise); the dump then reads that part in
the ``escaped`` encoding instead.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

from snapkeep.engines.mysql.connect import quote_ident

PLAIN = "plain"
FLOAT = "float"
BIT = "bit"
INDEX = "index"  # ENUM and SET
TEXT = "text"  # plugin types (UUID, INET6, INET4): binary input would mean their packed form
STRING = "string"  # format 3: a string/binary/JSON/spatial column, quoted in the line
PERIOD = "period"  # a system-versioned table's ROW START/END column (``versioning.py``)
CODECS = (PLAIN, FLOAT, BIT, INDEX, TEXT, STRING, PERIOD)

ESCAPED = "escaped"
QUOTED = "quoted"

# Types whose text form LOAD DATA ... CHARACTER SET binary reads back as-is.
_BUILTIN = frozenset([
    "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric",
    "double", "real", "year", "date", "datetime", "timestamp", "time", "char", "varchar",
    "binary", "varbinary", "tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob",
    "mediumblob", "longblob", "json", "geometry", "point", "linestring", "polygon", "multipoint",
    "multilinestring", "multipolygon", "geometrycollection",
])

# Types whose values are byte strings (the ``string`` codec in the quoted encoding).
_STRINGS = frozenset([
    "char", "varchar", "binary", "varbinary", "tinytext", "text", "mediumtext", "longtext",
    "tinyblob", "blob", "mediumblob", "longblob", "json", "geometry", "point", "linestring",
    "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection",
])

LOAD_FORMAT = ("CHARACTER SET binary FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
               "LINES TERMINATED BY '\\n'")
LOAD_FORMATS = {
    ESCAPED: LOAD_FORMAT,
    QUOTED: ("CHARACTER SET binary FIELDS TERMINATED BY '\\t' OPTIONALLY ENCLOSED BY '\\'' "
             "ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'"),
}


def codec_for(data_type: str, *, quoted: bool = False) -> str:
    """The codec of a column, from ``information_schema.COLUMNS.DATA_TYPE``; ``quoted``
    (description format 3) tells strings apart, which the quoted encoding quotes."""
    t = data_type.lower()
    if quoted and t in _STRINGS:
        return STRING
    if t == "float":
        return FLOAT
    if t == "bit":
        return BIT
    if t in ("enum", "set"):
        return INDEX
    if t not in _BUILTIN:
        return TEXT
    return PLAIN


@dataclass(frozen=True)
class Column:
    name: str
    codec: str = PLAIN

    def to_json(self) -> list[str]:
        return [self.name, self.codec]

    @classmethod
    def from_json(cls, data: list[str]) -> Column:
        name, codec = data
        if codec not in CODECS:
            raise ValueError(f"unknown column codec {codec!r}")
        return cls(name, codec)

    def select_expr(self) -> str:
        q = quote_ident(self.name)
        if self.codec == FLOAT:
            return f"CAST({q} AS DOUBLE)"
        if self.codec in (BIT, INDEX):
            return f"{q} + 0"
        return q

    def quoted_expr(self) -> str:
        """This column's field of a quoted-encoding line: never NULL, except when the value
        is too long for ``max_allowed_packet`` (see the module docstring)."""
        q = quote_ident(self.name)
        if self.codec in (STRING, TEXT):
            # An over-long CAST is NULL, which QUOTE would turn into the word NULL: a value
            # that is not NULL but quotes as the bare word must make the line NULL instead.
            cast = f"CAST({q} AS {'BINARY' if self.codec == STRING else 'CHAR'})"
            return f"IF({q} IS NULL, 'NULL', NULLIF(QUOTE({cast}), 'NULL'))"
        return f"IFNULL({self.select_expr()}, '\\\\N')"


def quoted_line_expr(columns: list[Column]) -> str:
    """The one expression a quoted-encoding SELECT returns per row: the encoded line."""
    return "CONCAT(" + ", '\\t', ".join(c.quoted_expr() for c in columns) + ")"


def load_clause(columns: list[Column]) -> str:
    """``(col, @v1, …) SET col = …`` for LOAD DATA, matching ``select_expr`` field order."""
    targets: list[str] = []
    sets: list[str] = []
    for i, col in enumerate(columns):
        if col.codec in (PLAIN, STRING, PERIOD):
            targets.append(quote_ident(col.name))
            continue
        var = f"@v{i}"
        targets.append(var)
        if col.codec == FLOAT:
            sets.append(f"{quote_ident(col.name)} = CAST({var} AS DOUBLE)")
        elif col.codec == TEXT:
            sets.append(f"{quote_ident(col.name)} = CONVERT({var} USING utf8mb4)")
        else:
            sets.append(f"{quote_ident(col.name)} = CAST({var} AS UNSIGNED)")
    clause = "(" + ", ".join(targets) + ")"
    if sets:
        clause += " SET " + ", ".join(sets)
    return clause


NULL_FIELD = b"\\N"


def escape_field(value: bytes | None) -> bytes:
    """One field: NULL as ``\\N``; backslash, tab, LF, CR and NUL escaped."""
    if value is None:
        return NULL_FIELD
    if b"\\" in value:
        value = value.replace(b"\\", b"\\\\")
    if b"\t" in value:
        value = value.replace(b"\t", b"\\t")
    if b"\n" in value:
        value = value.replace(b"\n", b"\\n")
    if b"\r" in value:
        value = value.replace(b"\r", b"\\r")
    if b"\0" in value:
        value = value.replace(b"\0", b"\\0")
    return value


def encode_row(row: tuple[bytes | None, ...]) -> bytes:
    return b"\t".join([escape_field(v) for v in row]) + b"\n"


_NEEDS_ESCAPE = re.compile(rb"[\\\n\r\0]")  # and tabs, counted separately


def encode_rows(rows: Iterable[tuple[bytes | None, ...]]) -> bytes:
    """``b"".join(encode_row(r) for r in rows)``, about five times faster (the dump's path).

    Most rows need no escaping: join a row's fields and, if the line holds no backslash,
    LF, CR or NUL and exactly the separator tabs, it is already the encoded line (NULLs
    become ``\\N`` after that check); otherwise fall back to escaping field by field.
    """
    out: list[bytes] = []
    append = out.append
    search = _NEEDS_ESCAPE.search
    # typed loosely: a row reaches it directly only once it is known to hold no None
    join_row: Callable[..., bytes] = b"\t".join
    for row in rows:
        if None in row:
            line = b"\t".join([b"" if v is None else v for v in row])
            if search(line) or line.count(b"\t") != len(row) - 1:
                append(b"\t".join([escape_field(v) for v in row]))
            else:
                append(b"\t".join([NULL_FIELD if v is None else v for v in row]))
        else:
            line = join_row(row)
            if search(line) or line.count(b"\t") != len(row) - 1:
                line = b"\t".join([escape_field(v) for v in row])
            append(line)
    if not out:
        return b""
    append(b"")
    return b"\n".join(out)


def join_lines(rows: Iterable[tuple[bytes | None, ...]]) -> bytes | None:
    """Quoted-encoding rows (one server-composed line each) as a block of lines; None when
    a line came back NULL (longer than ``max_allowed_packet``)."""
    lines = [r[0] for r in rows]
    if None in lines:
        return None
    if not lines:
        return b""
    lines.append(b"")
    return b"\n".join(cast("list[bytes]", lines))  # no None: checked above


_UNESCAPE = {ord("0"): b"\0", ord("t"): b"\t", ord("n"): b"\n", ord("r"): b"\r",
             ord("b"): b"\b", ord("Z"): b"\x1a"}


def decode_line(line: bytes) -> tuple[bytes | None, ...]:
    """The inverse of ``encode_row`` for one line without its newline (LOAD DATA's rules)."""
    fields: list[bytes | None] = []
    for raw in line.split(b"\t"):  # tabs inside values are escaped, so this split is exact
        if raw == NULL_FIELD:
            fields.append(None)
            continue
        fields.append(_unescaped(raw, 0)[0])
    return tuple(fields)


def _unescaped(data: bytes, i: int, stop: int | None = None) -> tuple[bytes, int]:
    """``data`` from ``i`` with its backslash escapes undone, up to its end or (``stop``)
    the first unescaped byte ``stop``; (those bytes, the position reached)."""
    out = bytearray()
    n = len(data)
    while i < n and data[i] != stop:
        if data[i] == 0x5C and i + 1 < n:
            out += _UNESCAPE.get(data[i + 1], data[i + 1:i + 2])
            i += 2
        else:
            out.append(data[i])
            i += 1
    return bytes(out), i


def decode_quoted_line(line: bytes) -> tuple[bytes | None, ...]:
    """The fields of one quoted-encoding line without its newline, read the way ``LOAD
    DATA … OPTIONALLY ENCLOSED BY '\''`` reads them (for tests and exports; one line
    may hold raw newlines inside quotes, so split a block with ``split_quoted_lines``)."""
    fields: list[bytes | None] = []
    i, n = 0, len(line)
    while True:
        if i < n and line[i] == 0x27:  # enclosed: up to the quote that ends the field
            value, i = _unescaped(line, i + 1, 0x27)
            if i >= n:
                raise ValueError(f"a quoted field is not closed: {line[:80]!r}")
            fields.append(value)
            i += 1
        else:
            end = line.find(b"\t", i)
            end = n if end < 0 else end
            raw = line[i:end]
            fields.append(None if raw in (NULL_FIELD, b"NULL") else decode_line(raw)[0])
            i = end
        if i >= n:
            return tuple(fields)
        i += 1  # the tab


def split_quoted_lines(block: bytes) -> list[bytes]:
    """The lines of a quoted-encoding block (newlines inside quotes do not end a line)."""
    lines: list[bytes] = []
    start = i = 0
    quoted = False
    n = len(block)
    while i < n:
        b = block[i]
        if quoted:
            if b == 0x5C:
                i += 1
            elif b == 0x27:
                quoted = False
        elif b == 0x27 and (i == start or block[i - 1] == 0x09):
            quoted = True
        elif b == 0x0A:
            lines.append(block[start:i])
            start = i + 1
        i += 1
    return lines


# MySQL character set name -> Python codec, for sending a saved statement in the
# character set its object was created with.
_PY_CODECS = {
    "utf8": "utf-8", "utf8mb3": "utf-8", "utf8mb4": "utf-8", "latin1": "cp1252",
    "ascii": "ascii", "gbk": "gbk", "gb2312": "gb2312", "big5": "big5", "sjis": "shift_jis",
    "cp932": "cp932", "ujis": "euc_jp", "eucjpms": "euc_jp", "euckr": "euc_kr",
    "latin2": "iso8859_2", "latin5": "iso8859_9", "latin7": "iso8859_13", "greek": "iso8859_7",
    "hebrew": "iso8859_8", "cp1250": "cp1250", "cp1251": "cp1251", "cp1256": "cp1256",
    "cp1257": "cp1257", "koi8r": "koi8_r", "koi8u": "koi8_u", "cp850": "cp850",
    "cp852": "cp852", "cp866": "cp866", "tis620": "tis_620", "macroman": "mac_roman",
}


def python_codec(mysql_charset: str) -> str | None:
    name = _PY_CODECS.get(mysql_charset.lower())
    if name is None:
        return None
    try:
        codecs.lookup(name)
    except LookupError:
        return None
    return name
