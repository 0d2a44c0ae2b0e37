"""Stored row streams turned into the VALUES rows of multi-row INSERT statements.

Every value becomes the SQL literal that makes an INSERT store what the restore's ``LOAD
DATA … CHARACTER SET binary`` stores (``encoding.py`` describes both line encodings):

- NULL (``\\N``; in the quoted encoding also the bare word ``NULL``) → ``NULL``;
- any other field → a binary string literal of its bytes, ``'…'`` under ``SET NAMES
  binary`` (or ``_binary'…'`` when the statement must stay in utf8mb4), which a column
  stores through the same ``Field::store(bytes, binary)`` as LOAD DATA: numbers, dates,
  DOUBLE's ``-0``, DECIMAL(65,30), zero dates and every charset come back exactly. A
  quoted field already is such a literal (``QUOTE()`` escaped ``\\``, ``'``, NUL and
  Ctrl-Z); a raw CR, tab or newline inside it is escaped too (the ``mariadb`` client turns
  CR LF into LF, and raw tabs and newlines mark fields and rows below). An escaped-encoding
  field's escapes (``\\\\ \\t \\n \\r \\0``) mean the same in SQL; only ``'`` and Ctrl-Z
  are added;
- codecs whose restore goes through a ``SET`` expression keep it: ``bit`` and ``index``
  (ENUM/SET) as the bare integer (``CAST(@v AS UNSIGNED)`` stores that number), ``text``
  (UUID, INET6…) as ``CONVERT('…' USING utf8mb4)``. ``float`` needs nothing: FLOAT stores
  a string the way it stores ``CAST(string AS DOUBLE)``.

Rows come out as ``(v1\\t,v2)\\n,(v1\\t,v2)``: the tab is whitespace to SQL and, with the
newline, the one place these bytes hold a raw tab or newline, which is what lets the
common case work on whole blocks with ``bytes.replace`` (``_quoted_block``,
``_escaped_block``) instead of value by value; tables with a ``bit``/``index``/``text``
column go row by row (``_fields_block``).

Blocks are whole lines. ``LineSplitter`` cuts them at the last newline of what has been
read; in the quoted encoding a newline may also sit inside a string, so a table whose
lines may hold such newlines (see ``export.py``) uses ``QuotedLineSplitter``, which
follows the quotes (a regular expression over whole lines, and a small resumable scanner
for a line still incomplete at the end of a chunk, so a row of any size is scanned once).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from snapkeep.engines.mysql.encoding import BIT, INDEX, QUOTED, STRING, TEXT, Column
from snapkeep.errors import RepositoryError

SPECIAL_CODECS = frozenset([BIT, INDEX, TEXT])
BINARY = b"'"  # the opening of a binary string under SET NAMES binary
INTRODUCED = b"_binary'"  # … and under any other connection character set

# A quoted field as QUOTE() writes it; raw tabs and newlines may be inside.
_QSTR = rb"'[^'\\]*+(?:\\.[^'\\]*+)*+'"
# One without them (each backslash escapes the next byte, which is not a tab or newline).
_QSTR_PLAIN = rb"'[^'\\\t\n]*+(?:\\[^\t\n][^'\\\t\n]*+)*+'"
_WHOLE_LINES = re.compile(rb"(?:(?>[^'\n]++|" + _QSTR + rb")*+\n)*+", re.S)
_RAW_INSIDE = re.compile(rb"((?>[^']++|" + _QSTR_PLAIN + rb")*+)(" + _QSTR + rb")?", re.S)
_OUTSIDE = re.compile(rb"[^'\n]*+")
_STRING_BODY = re.compile(rb"[^'\\]*+(?:\\.[^'\\]*+)*+", re.S)
_DIGITS = re.compile(rb"[0-9]+")
_ESCAPE = re.compile(rb"\\[^N]")  # a backslash other than the one of a NULL's \N


# -- whole lines out of chunks -----------------------------------------------------------------

class LineSplitter:
    """Whole lines from a stream in which every newline ends a line (the escaped encoding,
    and quoted lines known to hold no raw newline or tab inside their strings)."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []

    def feed(self, chunk: bytes) -> bytes:
        """The lines completed by ``chunk`` (b"" if none); the rest waits for more."""
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:
            self._pending.append(chunk)
            return b""
        if self._pending:
            block = b"".join([*self._pending, chunk[:cut]])
        else:
            block = chunk if cut == len(chunk) else chunk[:cut]
        self._pending = [chunk[cut:]] if cut < len(chunk) else []
        return block

    @property
    def leftover(self) -> int:
        return sum(len(p) for p in self._pending)


class QuotedLineSplitter:
    """Whole quoted-encoding lines, with raw tabs and newlines inside strings escaped."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # how far the incomplete line at the start of _buf has been scanned
        self._inside = False  # whether _pos is inside a string

    def feed(self, chunk: bytes) -> bytes:
        self._buf += chunk
        end = self._finish_line()
        if end < 0:
            return b""
        end = _WHOLE_LINES.match(self._buf, end).end()  # type: ignore[union-attr]
        block = bytes(self._buf[:end])
        del self._buf[:end]
        self._pos, self._inside = 0, False
        self._finish_line()  # scan what is there of the next line, so it is scanned once
        return _escape_raw_inside(block)

    def _finish_line(self) -> int:
        """Scan on from where the last call stopped; the index after the newline ending the
        first line, or -1 when the buffer ends first (the position is kept)."""
        buf, pos, n = self._buf, self._pos, len(self._buf)
        while True:
            if self._inside:
                pos = _STRING_BODY.match(buf, pos).end()  # type: ignore[union-attr]
                if pos >= n or buf[pos] != 0x27:  # the end, or a backslash escaping it
                    self._pos = pos
                    return -1
                self._inside = False
            else:
                pos = _OUTSIDE.match(buf, pos).end()  # type: ignore[union-attr]
                if pos >= n:
                    self._pos = pos
                    return -1
                if buf[pos] == 0x0A:
                    return pos + 1
                self._inside = True
            pos += 1

    @property
    def leftover(self) -> int:
        return len(self._buf)


def _escape_raw_inside(block: bytes) -> bytes:
    """Raw tabs and newlines inside the strings of whole quoted lines, escaped."""
    def fix(m: re.Match[bytes]) -> bytes:
        string = m.group(2)
        if string is None:
            return m.group(1)
        return m.group(1) + string.replace(b"\t", b"\\t").replace(b"\n", b"\\n")

    return _RAW_INSIDE.sub(fix, block)


def splitter_for(encoding: str, raw_inside: bool) -> LineSplitter | QuotedLineSplitter:
    """The splitter for a part; ``raw_inside``: its strings may hold raw newlines or tabs."""
    return QuotedLineSplitter() if encoding == QUOTED and raw_inside else LineSplitter()


# -- blocks of lines into rows -------------------------------------------------------------------

def rows_converter(encoding: str, columns: list[Column], opening: bytes = BINARY
                   ) -> Callable[[bytes], bytes]:
    """The function turning a block of whole lines into VALUES rows (see the module doc);
    ``opening``: ``BINARY`` under SET NAMES binary, ``INTRODUCED`` otherwise."""
    if any(c.codec in SPECIAL_CODECS for c in columns):
        fields = [_field_converter(encoding, c.codec, opening) for c in columns]
        return lambda block: _fields_block(block, encoding, fields)
    if encoding == QUOTED:
        strings = [c.codec == STRING for c in columns]
        return lambda block: _quoted_block(block, opening, strings[0], any(strings[1:]))
    return lambda block: _escaped_block(block, opening)


def _quoted_block(block: bytes, o: bytes, first_string: bool, later_string: bool) -> bytes:
    # A tab or a newline starts each field (one is put before the first line). A string's
    # NULL, the bare word, becomes the other columns' \N (strings are quoted, so only
    # NULL itself follows a tab or newline directly); which columns can be strings
    # decides the passes needed.
    b = b"\n" + block
    if later_string:
        b = b.replace(b"\tNULL", b"\t\\N")
    if first_string:
        b = b.replace(b"\nNULL", b"\n\\N")
    # Inside strings, hide escaped backslashes, then escaped quotes (raw NUL and Ctrl-Z
    # never occur: QUOTE escapes them), so every quote left delimits a string; drop those,
    # then quote every field alike.
    escapes = _ESCAPE.search(b) is not None
    if escapes:
        b = b.replace(b"\\\\", b"\x00\x00").replace(b"\\'", b"\x1a")
    b = b.translate(None, b"'").replace(b"\t", b"'\t," + o).replace(b"\n", b"')\n,(" + o)
    # \N is the only single backslash outside a string now (and inside: \0 and \Z only).
    b = b.replace(o + b"\\N'", b"NULL")
    if escapes:
        b = b.replace(b"\x00\x00", b"\\\\").replace(b"\x1a", b"\\'")
    if b"\r" in b:
        b = b.replace(b"\r", b"\\r")  # only inside strings: unquoted values hold none
    return b[4:-3 - len(o)]


def _escaped_block(block: bytes, o: bytes) -> bytes:
    b = (b"\n" + block).replace(b"'", b"\\'")
    if b"\x1a" in b:
        b = b.replace(b"\x1a", b"\\Z")
    b = b.replace(b"\t", b"'\t," + o).replace(b"\n", b"')\n,(" + o)
    return b.replace(o + b"\\N'", b"NULL")[4:-3 - len(o)]


def _fields_block(block: bytes, encoding: str, fields: list[Callable[[bytes], bytes]]) -> bytes:
    if encoding == QUOTED:
        if b"\r" in block:
            block = block.replace(b"\r", b"\\r")
    else:
        if b"'" in block:
            block = block.replace(b"'", b"\\'")
        if b"\x1a" in block:
            block = block.replace(b"\x1a", b"\\Z")
    rows: list[bytes] = []
    n = len(fields)
    for line in block.split(b"\n")[:-1]:
        values = line.split(b"\t")
        if len(values) != n:
            raise RepositoryError(f"a stored row has {len(values)} fields instead of {n}: "
                                  f"the snapshot's row data is damaged")
        rows.append(b"(" + b"\t,".join([f(v) for f, v in zip(fields, values, strict=True)])
                    + b")")
    return b"\n,".join(rows)


def _field_converter(encoding: str, codec: str, o: bytes) -> Callable[[bytes], bytes]:
    """One field (of a line whose CR, and in the escaped encoding ``'`` and Ctrl-Z, are
    already escaped) as its SQL value."""
    quoted = encoding == QUOTED

    def null(v: bytes) -> bool:
        return v == b"\\N" or (quoted and v == b"NULL")

    def literal(v: bytes) -> bytes:
        return o + v[1:] if quoted and v[:1] == b"'" else o + v + b"'"

    if codec in (BIT, INDEX):
        def number(v: bytes) -> bytes:
            if null(v):
                return b"NULL"
            if _DIGITS.fullmatch(v) is None:
                raise RepositoryError(f"a stored {codec} value is not a number ({v[:40]!r}): "
                                      f"the snapshot's row data is damaged")
            return v
        return number
    if codec == TEXT:
        return lambda v: b"NULL" if null(v) else b"CONVERT(" + literal(v) + b" USING utf8mb4)"
    return lambda v: b"NULL" if null(v) else literal(v)
