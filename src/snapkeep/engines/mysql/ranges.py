"""Splitting a table into primary-key ranges that several connections dump in parallel.

A table is split on the first column of its primary key when that column's type has an
exact, orderable literal form here (integers, DECIMAL, DATE/DATETIME/TIMESTAMP/YEAR,
BINARY/VARBINARY, CHAR/VARCHAR); otherwise (no primary key, FLOAT/DOUBLE, ENUM, BIT, TEXT…)
it is read whole.

Split points are chosen so that an unchanged table is cut at the same values in the next
snapshot and its parts deduplicate. Part *i* is ``s[i-1] <= c < s[i]`` (open at both
ends), so the parts cover the key space exactly once whatever rows a later snapshot
sees: no gap, no overlap, in primary-key order. Two ways to find them:

- **Integer keys** (the common AUTO_INCREMENT case) are cut arithmetically, at no cost on
  the server: from ``MIN``/``MAX`` of the key (two index dives) and the table's row
  estimate, the step is the key span one part's rows cover, rounded to a power of two,
  and the splits are the multiples of that step inside the span. A key much sparser than
  its row count (fewer than one row per ``MAX_SPARSENESS`` values) is walked instead,
  since value ranges would then say little about how many rows each part holds.
- **Other keys** are walked: starting at the lowest key, each split is the first-column
  value found ``rows_per_part`` rows further on in key order (``ORDER BY c LIMIT 1 OFFSET
  k``, an index walk on the server), or the next distinct value when more than ``k`` rows
  share one first-column value. Each split is handed to the dump as soon as it is found.

``rows_per_part`` is ``PART_BYTES`` (64 MiB) divided by the table's average row length,
rounded to a power of two (between 2^13 and 2^21 rows) so that the server's fluctuating
estimate of the row length rarely changes it. A table holding fewer rows than that —
under ~64 MiB, or under 2^21 = 2 M rows — is one part.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from snapkeep.engines.mysql.connect import quote_ident

PART_BYTES = 64 << 20
MIN_PART_ROWS = 1 << 13
MAX_PART_ROWS = 1 << 21

MAX_SPARSENESS = 64

_INTEGER = frozenset(["tinyint", "smallint", "mediumint", "int", "integer", "bigint"])
_NUMERIC = frozenset(["tinyint", "smallint", "mediumint", "int", "integer", "bigint",
                      "decimal", "numeric", "year"])
_TEMPORAL = frozenset(["date", "datetime", "timestamp"])
_BINARY = frozenset(["binary", "varbinary"])
_CHAR = frozenset(["char", "varchar"])
_NUMBER_TEXT = re.compile(rb"-?[0-9]+(\.[0-9]+)?")
_TEMPORAL_TEXT = re.compile(rb"[0-9][0-9 :.\-]*")
_CHARSET_NAME = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class KeyColumn:
    """The first primary-key column of a table: name, DATA_TYPE, character set (or None)."""

    name: str
    data_type: str
    charset: str | None = None

    @property
    def splittable(self) -> bool:
        t = self.data_type.lower()
        if t in _CHAR:
            return self.charset is not None and bool(_CHARSET_NAME.fullmatch(self.charset))
        return t in _NUMERIC or t in _TEMPORAL or t in _BINARY

    @property
    def integer(self) -> bool:
        return self.data_type.lower() in _INTEGER

    def literal(self, value: bytes) -> str:
        """An SQL literal that compares equal to ``value`` (the column's raw text form)."""
        t = self.data_type.lower()
        if t in _NUMERIC:
            if not _NUMBER_TEXT.fullmatch(value):
                raise ValueError(f"unexpected {t} value {value!r}")
            return value.decode("ascii")
        if t in _TEMPORAL:
            if not _TEMPORAL_TEXT.fullmatch(value):
                raise ValueError(f"unexpected {t} value {value!r}")
            return "'" + value.decode("ascii") + "'"
        if t in _BINARY:
            return "X'" + value.hex() + "'"
        if t in _CHAR and self.charset and _CHARSET_NAME.fullmatch(self.charset):
            # The introducer makes it a string of the column's charset; the column's
            # collation wins the comparison (the literal is only coercible).
            return f"_{self.charset} X'{value.hex()}'"
        raise ValueError(f"a {t} column cannot be split on")


def rows_per_part(avg_row_length: int | None) -> int:
    """Rows in a part: ``PART_BYTES`` / average row length, as a power of two, clamped."""
    avg = max(int(avg_row_length or 0), 1)
    exponent = round(math.log2(max(PART_BYTES / avg, 1)))
    return max(MIN_PART_ROWS, min(MAX_PART_ROWS, 1 << exponent))


def next_split_sql(table: str, key: KeyColumn, low: bytes | None, offset: int) -> str:
    """The first-column value ``offset`` rows from ``low`` on in key order, and whether it
    is above ``low`` in the column's collation (always 1 without ``low``)."""
    c = quote_ident(key.name)
    if low is None:
        return (f"SELECT {c}, 1 FROM {quote_ident(table)} ORDER BY {c} "
                f"LIMIT 1 OFFSET {int(offset)}")
    lit = key.literal(low)
    return (f"SELECT {c}, {c} > {lit} FROM {quote_ident(table)} WHERE {c} >= {lit} "
            f"ORDER BY {c} LIMIT 1 OFFSET {int(offset)}")


def next_distinct_sql(table: str, key: KeyColumn, low: bytes) -> str:
    """The first first-column value above ``low`` (when one value fills a whole part)."""
    c = quote_ident(key.name)
    return (f"SELECT {c}, 1 FROM {quote_ident(table)} WHERE {c} > {key.literal(low)} "
            f"ORDER BY {c} LIMIT 1")


def bounds_sql(table: str, key: KeyColumn) -> str:
    c = quote_ident(key.name)
    return f"SELECT MIN({c}), MAX({c}) FROM {quote_ident(table)}"


def integer_split_points(low: int, high: int, rows: int, per_part: int) -> list[int] | None:
    """Multiples of a power-of-two step in ``(low, high]`` cutting a table of about ``rows``
    rows with integer keys from ``low`` to ``high`` into parts of about ``per_part`` rows;
    None when the key is too sparse for value ranges to follow the rows (walk it)."""
    if rows <= per_part or high <= low:
        return []
    span = high - low + 1
    if span > rows * MAX_SPARSENESS:
        return None
    step = 1 << max(0, round(math.log2(max(span * per_part / rows, 1))))
    first = (low // step + 1) * step
    return list(range(first, high + 1, step))


FetchRow = Callable[[str], "tuple[Any, ...] | None"]


def split_points(fetch_row: FetchRow, table: str, key: KeyColumn, per_part: int,
                 rows: int) -> Iterator[bytes]:
    """Increasing first-column values cutting the table into non-empty parts of about
    ``per_part`` rows, yielded as they are found; ``rows`` is the table's row estimate.

    ``fetch_row(sql)`` runs a statement and returns its first row (raw bytes values) or
    None when there is none.
    """
    if key.integer:
        bounds = fetch_row(bounds_sql(table, key))
        if bounds is None or bounds[0] is None:
            return
        points = integer_split_points(int(bounds[0]), int(bounds[1]), rows, per_part)
        if points is not None:
            yield from (str(p).encode("ascii") for p in points)
            return
    first = fetch_row(next_split_sql(table, key, None, 0))
    if first is None:
        return
    low = bytes(first[0])  # splits are above the lowest value: no part is empty
    while True:
        row = fetch_row(next_split_sql(table, key, low, per_part))
        if row is None:
            return
        if row[1] in (b"0", 0):
            # more than a part's worth of rows share ``low`` (in the collation's eyes)
            row = fetch_row(next_distinct_sql(table, key, low))
            if row is None:
                return
        yield bytes(row[0])
        low = bytes(row[0])


def range_conditions(key: KeyColumn, points: Iterable[bytes]) -> Iterator[str]:
    """One WHERE condition per part (``""`` for a table read whole), in key order, each
    yielded as soon as the split point ending it is known."""
    c = quote_ident(key.name)
    previous: str | None = None
    for point in points:
        lit = key.literal(point)
        yield f"{c} < {lit}" if previous is None else f"{c} >= {previous} AND {c} < {lit}"
        previous = lit
    yield "" if previous is None else f"{c} >= {previous}"


def select_sql(table: str, select_exprs: Sequence[str], order_by: Sequence[str],
               condition: str = "", *, all_versions: bool = False) -> str:
    """The SELECT of one part: its columns, its range, in primary-key order;
    ``all_versions``: a system-versioned table's history rows too (``FOR SYSTEM_TIME
    ALL``; the split points come from its current rows, but the parts are open at both
    ends, so they cover every version all the same)."""
    sql = "SELECT " + ", ".join(select_exprs) + " FROM " + quote_ident(table)
    if all_versions:
        sql += " FOR SYSTEM_TIME ALL"
    if condition:
        sql += " WHERE " + condition
    if order_by:
        sql += " ORDER BY " + ", ".join(quote_ident(c) for c in order_by)
    return sql


def key_columns_sql() -> str:
    """First primary-key column of every table of a schema, with its type and charset."""
    return ("SELECT k.TABLE_NAME, k.COLUMN_NAME, c.DATA_TYPE, c.CHARACTER_SET_NAME "
            "FROM information_schema.STATISTICS k JOIN information_schema.COLUMNS c "
            "ON c.TABLE_SCHEMA = k.TABLE_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME "
            "AND c.COLUMN_NAME = k.COLUMN_NAME "
            "WHERE k.TABLE_SCHEMA = %s AND k.INDEX_NAME = 'PRIMARY' AND k.SEQ_IN_INDEX = 1")


def key_columns(rows: Sequence[Sequence[Any]]) -> dict[str, KeyColumn]:
    return {str(t): KeyColumn(str(c), str(dt), None if cs is None else str(cs))
            for t, c, dt, cs in rows}
