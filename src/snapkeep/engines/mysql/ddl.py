"""Splitting a saved ``SHOW CREATE TABLE`` into a fast-loading table and the DDL added after.

Loading rows into a table with only its clustered key is much faster than maintaining
every secondary index row by row, so an InnoDB table is created from ``load_ddl`` (the
statement without the secondary keys and foreign keys that can wait), its rows are
loaded, then ``post_ddl`` (one ``ALTER TABLE … ADD …, ADD …``) adds the rest.

The final ``SHOW CREATE TABLE`` must be identical to the saved one. The server keeps
keys sorted by kind (primary, unique NOT NULL, other unique, long unique hashes, plain,
FULLTEXT) and, within a kind, by position; keys already in a table come before keys an
``ALTER`` adds. So what stays in the load-time table is always a *prefix* of the printed
secondary keys (plus kinds the server sorts apart), and the rest is added in printed
order — the result is sorted exactly as before:

- kept: the PRIMARY KEY; without one, a leading UNIQUE key on NOT NULL columns (InnoDB
  clusters on it); every key up to the first one an AUTO_INCREMENT column needs (its
  first column); FULLTEXT keys (sorted last anyway; adding them later rebuilds an InnoDB
  table, one at a time) and ``UNIQUE … USING HASH`` keys (adding them later copies the
  table); columns, CHECK constraints, periods and table options verbatim.
- deferred: the other keys, then the foreign keys, in printed order.

Only InnoDB tables are split: MyISAM/Aria build their keys in bulk after a ``LOAD DATA``
into an empty table by themselves, and other engines gain nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from snapkeep.engines.mysql.connect import quote_ident

_IDENT = re.compile(r"`((?:[^`]|``)*)`")


@dataclass
class Item:
    """One element of the parenthesised body of a CREATE TABLE statement."""

    text: str  # stripped, without the separating comma
    kind: str  # column, primary, unique, key, fulltext, spatial, foreign, check, other
    name: str | None = None  # the column, key or constraint name
    columns: list[str] = field(default_factory=list)  # key columns, in order
    prefix_parts: bool = False  # a key on a column prefix, e.g. `(`a`(10))`
    hashed: bool = False  # UNIQUE … USING HASH (a long unique key)
    not_null: bool = False  # columns only
    auto_increment: bool = False  # columns only
    ref_table: str | None = None  # foreign keys: the referenced table (same database)
    ref_db: str | None = None  # foreign keys: the referenced table's database, if named
    ref_columns: list[str] = field(default_factory=list)


@dataclass
class SplitTable:
    name: str
    load_ddl: str
    keys: list[Item]  # deferred keys, in printed order
    foreign: list[Item]  # deferred foreign keys, in printed order
    kept_indexes: list[list[str]]  # columns of the keys the load-time table has
    innodb: bool = False  # ENGINE=InnoDB (its rows load best with unique_checks on)

    @property
    def deferred(self) -> list[Item]:
        return self.keys + self.foreign

    def alter(self, items: list[Item]) -> str | None:
        """``ALTER TABLE … ADD …, ADD …`` for ``items``; None when there are none."""
        if not items:
            return None
        return (f"ALTER TABLE {quote_ident(self.name)} "
                + ", ".join("ADD " + i.text for i in items))

    @property
    def post_ddl(self) -> str | None:
        return self.alter(self.deferred)

    def has_index_on(self, columns: list[str]) -> bool:
        """Whether the load-time table has a key starting with ``columns``."""
        return any(k[:len(columns)] == columns for k in self.kept_indexes)


def scan(text: str, start: int) -> list[tuple[int, int]]:
    """Top-level comma-separated spans inside the parenthesis that opens at ``start``.

    Quotes (``'…'``, ``"…"``, backquotes) and ``/* … */`` comments are skipped; returns
    the spans and, as the last element, (end, end) where ``end`` is the closing paren.
    """
    assert text[start] == "("
    spans: list[tuple[int, int]] = []
    depth = 0
    item_start = start + 1
    for i in _unquoted(text, start, comments=True):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                spans.append((item_start, i))
                spans.append((i, i))
                return spans
        elif c == "," and depth == 1:
            spans.append((item_start, i))
            item_start = i + 1
    raise ValueError("unbalanced parentheses in CREATE TABLE statement")


def _unquoted(text: str, start: int, *, comments: bool = False) -> Iterator[int]:
    """The positions from ``start`` on outside quoted tokens (``'…'``, ``"…"``,
    backquotes) and, with ``comments``, outside ``/* … */`` comments."""
    i, n = start, len(text)
    while i < n:
        c = text[i]
        if c in "'\"`":
            i = skip_quoted(text, i)
        elif comments and c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            yield i
            i += 1


def skip_quoted(text: str, i: int) -> int:
    """Index just after the quoted token starting at ``i``."""
    q = text[i]
    j = i + 1
    n = len(text)
    while j < n:
        c = text[j]
        if c == "\\" and q != "`":
            j += 2
            continue
        if c == q:
            if j + 1 < n and text[j + 1] == q:  # doubled quote
                j += 2
                continue
            return j + 1
        j += 1
    raise ValueError("unterminated quoted token in CREATE TABLE statement")


def top_level(text: str) -> str:
    """``text`` with quoted tokens, comments and parenthesised groups blanked out (same
    length, so positions still match)."""
    out: list[str] = []
    depth = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in "'\"`":
            j = skip_quoted(text, i)
            out.append(" " * (j - i))
            i = j
            continue
        if c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            j = n if end < 0 else end + 2
            out.append(" " * (j - i))
            i = j
            continue
        if c == "(":
            depth += 1
            out.append(" ")
        elif c == ")":
            depth = max(depth - 1, 0)
            out.append(" ")
        else:
            out.append(c if depth == 0 else " ")
        i += 1
    return "".join(out)


def _unquote(token: str) -> str:
    return token[1:-1].replace("``", "`")


def _key_columns(text: str) -> tuple[list[str], bool]:
    """The columns of the first parenthesised group of a key definition."""
    open_at = first_paren(text)
    if open_at < 0:
        return [], False
    spans = scan(text, open_at)
    cols: list[str] = []
    prefix = False
    for a, b in spans[:-1]:
        part = text[a:b].strip()
        m = _IDENT.match(part)
        if m:
            cols.append(m.group(1).replace("``", "`"))
            rest = part[m.end():].strip()
            if rest.startswith("("):
                prefix = True
        else:
            cols.append(part)  # an expression: never matches a column name
    return cols, prefix


def first_paren(text: str) -> int:
    """The position of the first parenthesis outside quotes, -1 if there is none."""
    return next((i for i in _unquoted(text, 0) if text[i] == "("), -1)


_KEY_PREFIXES = (
    ("PRIMARY KEY", "primary"), ("UNIQUE KEY", "unique"), ("UNIQUE INDEX", "unique"),
    ("UNIQUE", "unique"), ("FULLTEXT KEY", "fulltext"), ("FULLTEXT INDEX", "fulltext"),
    ("FULLTEXT", "fulltext"), ("SPATIAL KEY", "spatial"), ("SPATIAL INDEX", "spatial"),
    ("SPATIAL", "spatial"), ("KEY", "key"), ("INDEX", "key"), ("FOREIGN KEY", "foreign"),
    ("CHECK", "check"),
)


def parse_item(text: str) -> Item:
    text = text.strip()
    if text.startswith("`"):
        m = _IDENT.match(text)
        assert m is not None
        top = top_level(text[m.end():]).upper()
        words = top.split()
        not_null = any(a == "NOT" and b == "NULL" for a, b in zip(words, words[1:], strict=False))
        return Item(text, "column", _unquote(m.group(0)), not_null=not_null,
                    auto_increment="AUTO_INCREMENT" in words)
    upper = text.upper()
    name: str | None = None
    body = text
    if upper.startswith("CONSTRAINT"):
        rest = text[len("CONSTRAINT"):].lstrip()
        m = _IDENT.match(rest)
        if m:
            name = _unquote(m.group(0))
            rest = rest[m.end():].lstrip()
        body = rest
    ubody = body.upper()
    for prefix, kind in _KEY_PREFIXES:
        if ubody.startswith(prefix) and (len(ubody) == len(prefix) or not (
                ubody[len(prefix)].isalnum() or ubody[len(prefix)] == "_")):
            if kind in ("check",):
                return Item(text, kind, name)
            after = body[len(prefix):].lstrip()
            if kind not in ("primary", "foreign"):
                m = _IDENT.match(after)
                if m:
                    name = _unquote(m.group(0))
            cols, prefix_parts = _key_columns(after)
            after_words = top_level(after).upper().split()
            hashed = any(a == "USING" and b == "HASH"
                         for a, b in zip(after_words, after_words[1:], strict=False))
            item = Item(text, kind, name, cols, prefix_parts, hashed)
            if kind == "foreign":
                _parse_references(item, after)
            return item
    return Item(text, "other", name)


def _parse_references(item: Item, text: str) -> None:
    top = top_level(text).upper()
    at = top.find("REFERENCES")
    if at < 0:
        return
    rest = text[at + len("REFERENCES"):].lstrip()
    names: list[str] = []
    while True:
        m = _IDENT.match(rest)
        if not m:
            break
        names.append(_unquote(m.group(0)))
        rest = rest[m.end():].lstrip()
        if rest.startswith("."):
            rest = rest[1:].lstrip()
        else:
            break
    if not names:
        return
    item.ref_table = names[-1]
    item.ref_db = names[0] if len(names) > 1 else None
    item.ref_columns, _ = _key_columns(rest)


def qualify_reference(item: Item, database: str) -> str:
    """A foreign key's text with its unqualified referenced table named in ``database``:
    a table restored on its own keeps pointing at the live database's parent table."""
    if item.ref_db is not None or item.ref_table is None:
        return item.text
    at = top_level(item.text).upper().find("REFERENCES")
    if at < 0:
        return item.text
    rest = item.text[at + len("REFERENCES"):]
    m = _IDENT.match(rest.lstrip())
    if not m:
        return item.text
    start = at + len("REFERENCES") + (len(rest) - len(rest.lstrip()))
    return item.text[:start] + quote_ident(database) + "." + item.text[start:]


def parse_create_table(ddl: str) -> tuple[str, list[Item], str]:
    """(head up to and including "(", body items, tail from the closing ")")."""
    open_at = first_paren(ddl)
    if open_at < 0:
        raise ValueError("no column list in CREATE TABLE statement")
    spans = scan(ddl, open_at)
    close_at = spans[-1][0]
    items = [parse_item(ddl[a:b]) for a, b in spans[:-1] if ddl[a:b].strip()]
    return ddl[:open_at + 1], items, ddl[close_at:]


def _engine(tail: str) -> str | None:
    m = re.search(r"\bENGINE\s*=\s*(\w+)", top_level(tail), re.IGNORECASE)
    return m.group(1).lower() if m else None


def split_create_table(name: str, ddl: str) -> SplitTable:
    """The load-time CREATE TABLE and the deferred keys and foreign keys (see module doc)."""
    try:
        head, items, tail = parse_create_table(ddl)
    except ValueError:
        return SplitTable(name, ddl, [], [], [])
    every_key = [i.columns for i in items if i.kind in ("primary", "unique", "key")]
    if _engine(tail) != "innodb":
        return SplitTable(name, ddl, [], [], every_key)
    columns = {i.name: i for i in items if i.kind == "column"}
    auto_cols = {n for n, c in columns.items() if c.auto_increment}
    secondary = [i for i in items if i.kind in ("unique", "key", "spatial")]
    primary = next((i for i in items if i.kind == "primary"), None)

    keep_upto = -1  # index into ``secondary`` of the last key kept
    if primary is None and secondary:
        first = secondary[0]
        if (first.kind == "unique" and not first.prefix_parts and not first.hashed
                and first.columns and all(c in columns and columns[c].not_null
                                          for c in first.columns)):
            keep_upto = 0
    for col in auto_cols:
        if primary is not None and primary.columns[:1] == [col]:
            continue
        for idx, key in enumerate(secondary):
            if key.columns[:1] == [col]:
                keep_upto = max(keep_upto, idx)
                break
    kept_secondary = {id(k) for k in secondary[:keep_upto + 1]}
    keys: list[Item] = []
    foreign: list[Item] = []
    kept: list[Item] = []
    for item in items:
        if item.kind in ("unique", "key", "spatial"):
            if id(item) in kept_secondary or item.hashed:
                kept.append(item)
            else:
                keys.append(item)
        elif item.kind == "foreign":
            foreign.append(item)
        else:
            kept.append(item)
    kept_indexes = [i.columns for i in kept if i.kind in ("primary", "unique", "key")]
    if not keys and not foreign:
        return SplitTable(name, ddl, [], [], kept_indexes, innodb=True)
    load_ddl = head + "\n" + ",\n".join("  " + i.text for i in kept) + "\n" + tail
    return SplitTable(name, load_ddl, keys, foreign, kept_indexes, innodb=True)


def requalify(text: str, old_db: str, new_db: str, only: set[str] | None = None) -> str:
    """``text`` with every qualified reference ``\\`old_db\\`.…`` naming ``new_db`` instead.

    ``SHOW CREATE TABLE`` prints a column's ``DEFAULT nextval(seq)`` qualified with the
    database the table was created in (even its own), and a view keeps a qualified
    ``\\`db\\`.\\`f\\`()`` as written; such self-references must follow the restored copy.
    Only backquoted identifiers directly followed by ``.`` are rewritten (with ``only``,
    only those whose next identifier is in it); string literals and comments are left
    alone.
    """
    if old_db == new_db:
        return text
    try:
        return _requalify(text, old_db, new_db, only)
    except ValueError:  # not a statement the server printed: leave it to fail as it is
        return text


def _requalify(text: str, old_db: str, new_db: str, only: set[str] | None) -> str:
    token = quote_ident(old_db)
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            j = n if end < 0 else end + 2
            out.append(text[i:j])
            i = j
            continue
        if c in "'\"`":
            j = skip_quoted(text, i)
            piece = text[i:j]
            if c == "`" and piece == token and text.startswith(".", j) and (
                    only is None or _next_ident(text, j + 1) in only):
                piece = quote_ident(new_db)
            out.append(piece)
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _next_ident(text: str, at: int) -> str | None:
    m = _IDENT.match(text, at)
    return _unquote(m.group(0)) if m else None


def self_referencing_columns(ddl: str, db: str) -> list[str]:
    """The column definitions of a ``SHOW CREATE TABLE`` that name ``db`` qualified (a
    ``DEFAULT nextval(\\`db\\`.\\`seq\\`)``): what must be re-pointed after a RENAME TABLE,
    which keeps a default expression's text as it is."""
    try:
        items = parse_create_table(ddl)[1]
    except ValueError:
        return []
    marker = "\x00"
    return [i.text for i in items
            if i.kind == "column" and requalify(i.text, db, marker) != i.text]
