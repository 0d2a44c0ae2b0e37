"""Which databases and objects a replayed statement changes, and renaming its database.

The fast replayer (``binlog_replay.py``) applies a source database's query events to
another database: ``statement_objects`` tells it which objects a DDL statement names (and
whether it reaches beyond one database: users, grants, other databases), so it can refuse
what it cannot confine or skip what a partial restore leaves out; ``requalify_names``
points the names the statement qualifies with the source database at the target one.
Comments, quoted strings and identifiers are skipped as the server's parser skips them.
"""

from __future__ import annotations

import re

from snapkeep.engines.mysql.connect import quote_ident
from snapkeep.engines.mysql.ddl import skip_quoted

_SERVER_WIDE = re.compile(
    r"(GRANT|REVOKE|FLUSH|RESET|PURGE|INSTALL|UNINSTALL|SET\s+(PASSWORD|DEFAULT\s+ROLE)|"
    r"(CREATE|ALTER|DROP|RENAME)\s+(USER|ROLE|SERVER|TABLESPACE|LOGFILE)|"
    r"(CREATE|ALTER|DROP)\s+(DATABASE|SCHEMA))\b", re.I)
_OBJECT = re.compile(
    r"(?P<verb>CREATE|ALTER|DROP|TRUNCATE|RENAME|OPTIMIZE|ANALYZE|REPAIR|CHECK)\s+"
    r"(?:OR\s+REPLACE\s+)?"
    r"(?:(?:TEMPORARY|ONLINE|OFFLINE|IGNORE|UNIQUE|FULLTEXT|SPATIAL|AGGREGATE|NO_WRITE_TO_BINLOG"
    r"|LOCAL|ALGORITHM\s*=\s*\w+|DEFINER\s*=\s*(?:`[^`]*`|'[^']*'|\w+)(?:@(?:`[^`]*`|'[^']*'|[\w.%]+))?"
    r"|SQL\s+SECURITY\s+\w+)\s+)*"
    r"(?P<kind>TABLES?|VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|INDEX|SEQUENCE|PACKAGE(?:\s+BODY)?)"
    r"\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?", re.I)
_IDENT = re.compile(r"`((?:[^`]|``)*)`|([\w$]+)")


def _strip_comments(text: str) -> str:
    """The statement without its leading comments and whitespace."""
    i = 0
    while True:
        rest = text[i:].lstrip()
        i = len(text) - len(rest)
        if rest.startswith("/*") and not rest.startswith("/*!"):
            end = text.find("*/", i + 2)
            if end < 0:
                return ""
            i = end + 2
        elif rest.startswith(("-- ", "#")):
            end = text.find("\n", i)
            if end < 0:
                return ""
            i = end + 1
        else:
            return rest


def _name_at(text: str, i: int) -> tuple[str | None, str, int] | None:
    """``[db.]name`` at ``i``: (db or None, name, end)."""
    m = _IDENT.match(text, i)
    if m is None:
        return None
    first = m.group(1).replace("``", "`") if m.group(1) is not None else m.group(2)
    j = m.end()
    k = j
    while k < len(text) and text[k] in " \t\r\n":
        k += 1
    if text.startswith(".", k):
        k += 1
        while k < len(text) and text[k] in " \t\r\n":
            k += 1
        m2 = _IDENT.match(text, k)
        if m2 is not None:
            second = m2.group(1).replace("``", "`") if m2.group(1) is not None else m2.group(2)
            return first, second, m2.end()
    return None, first, j


TABLE_KINDS = frozenset({"TABLE", "TABLES", "INDEX", "SEQUENCE"})
_TRUNCATE = re.compile(r"TRUNCATE\s+(?!TABLE\b)", re.I)


def statement_objects(text: str, default_db: str) -> tuple[str, list[tuple[str, str]]] | None:
    """What a statement creates, changes or drops: its kind (``TABLE``, ``VIEW``,
    ``INDEX``…) and the ``(database, name)`` of the names it acts on (``CREATE TABLE
    db.t``, ``DROP TABLE a, db.b``, ``RENAME TABLE a TO db.b``; for ``CREATE/DROP INDEX i
    ON t`` the table), unqualified ones in ``default_db``; for any other statement
    ``("", [(default_db, "")])``; None for a statement on the server itself (accounts,
    databases, FLUSH…), which a replay into one database never runs."""
    body = _strip_comments(text)
    if _SERVER_WIDE.match(body):
        return None
    other = ("", [(default_db, "")] if default_db else [])
    truncate = _TRUNCATE.match(body)
    if truncate is not None:
        kind, verb, i = "TABLE", "TRUNCATE", truncate.end()
    else:
        m = _OBJECT.match(body)
        if m is None:
            return other
        kind = " ".join(m.group("kind").upper().split())
        verb = m.group("verb").upper()
        i = m.end()
    if kind == "INDEX":  # CREATE/DROP INDEX name ON table
        on = re.compile(r"\s+ON\s+", re.I).search(body, i)
        if on is None:
            return other
        i = on.end()
    objects: list[tuple[str, str]] = []
    lists = verb in ("DROP", "RENAME", "OPTIMIZE", "ANALYZE", "REPAIR", "CHECK") or (
        kind == "TABLES")
    while True:
        got = _name_at(body, i)
        if got is None:
            break
        objects.append((got[0] if got[0] is not None else default_db, got[1]))
        i = got[2]
        sep = _SEPARATOR.match(body, i)
        if sep is None or not lists:
            break
        i = sep.end()
    return kind, [o for o in objects if o[0]]


_SEPARATOR = re.compile(r"\s*(,|\s+TO\s+)\s*", re.I)


def requalify_names(text: str, old_db: str, new_db: str) -> str:
    """``text`` with every qualified name in ``old_db`` (``old_db.x``, ``\\`old_db\\`.x``)
    naming ``new_db`` instead; strings and comments (but executable ``/*!…*/`` comments,
    which the server runs) left alone."""
    if old_db == new_db:
        return text
    try:
        return _requalify(text, old_db, new_db)
    except ValueError:  # an unterminated quote: the server will say what is wrong
        return text


def _requalify(text: str, old_db: str, new_db: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    new = quote_ident(new_db)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("/*", i) and not text.startswith("/*!", i):
            end = text.find("*/", i + 2)
            j = n if end < 0 else end + 2
        elif c in "'\"":
            j = skip_quoted(text, i)
        elif c == "`" or c.isalnum() or c in "_$":
            m = _IDENT.match(text, i)
            assert m is not None
            j = m.end()
            name = m.group(1).replace("``", "`") if m.group(1) is not None else m.group(2)
            k = j
            while k < n and text[k] in " \t\r\n":
                k += 1
            prev = text[i - 1] if i else " "
            if name == old_db and text.startswith(".", k) and prev != "." and not (
                    m.group(2) is not None and name.isdigit()):
                out.append(new)
                i = j
                continue
        else:
            j = i + 1
        out.append(text[i:j])
        i = j
    return "".join(out)
