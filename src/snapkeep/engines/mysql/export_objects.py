"""Views, routines, triggers and events as statements of an exported SQL script.

Each object is created the way ``objects.execute_as_created`` creates it in a restore: its
saved statement, sent in the character set it was created with, under its saved
``sql_mode``, ``character_set_client`` and ``collation_connection`` (an event also under
its ``time_zone``), with its DEFINER as saved; routines, triggers and events under the
database collation they were created under.

The stock ``mariadb`` client does not pass every statement through as written: it strips
``--``, ``#`` and ``/* */`` comments (without ``--comments``), turns CR LF into LF and
reads backslash commands. So a statement goes out between ``DELIMITER ;;`` lines, the way
mariadb-dump writes it, only when none of that can touch it; otherwise its bytes go into
a string (hex for multi-byte character sets other than UTF-8, whose bytes can hide a
quote from the client's parser) and ``EXECUTE IMMEDIATE`` runs it, so the server stores
exactly the saved text, comments included.
"""

from __future__ import annotations

from typing import Any

from snapkeep.engines.mysql.connect import sql_bytes
from snapkeep.engines.mysql.encoding import python_codec
from snapkeep.errors import RepositoryError

# The session of the whole script between objects (what the restore's loads run under).
LOAD_SQL_MODE = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"
DEFAULTS = b"SET NAMES utf8mb4, SESSION sql_mode = '" + LOAD_SQL_MODE.encode() + \
    b"', time_zone = '+00:00';\n"
# Python codecs of character sets in which a byte that looks like a quote or a backslash
# may be the second half of a character.
_MULTIBYTE = frozenset(["gbk", "gb2312", "big5", "shift_jis", "cp932", "euc_jp", "euc_kr"])
# What the client would rewrite or read as a command outside a string (checked anywhere).
_CLIENT_TOUCHES = (b"--", b"#", b"/*", b"\r", b"\0", b"\\")
_DELIMITERS = (b";;", b"$$", b"//", b";;;;")


def literal(value: bytes) -> bytes:
    """A single-quoted SQL string of ``value`` (backslash escapes on)."""
    for raw, escaped in ((b"\\", b"\\\\"), (b"'", b"\\'"), (b"\0", b"\\0"), (b"\r", b"\\r"),
                         (b"\x1a", b"\\Z")):
        if raw in value:
            value = value.replace(raw, escaped)
    return b"'" + value + b"'"


def text_literal(value: str) -> bytes:
    return literal(value.encode("utf-8"))


def create_object(obj: dict[str, Any]) -> bytes:
    """The statements that create ``obj`` as saved, and put the script's session back."""
    charset = obj.get("character_set_client") or "utf8mb4"
    codec = python_codec(charset)
    if codec is None:
        charset, codec = "utf8mb4", "utf-8"
    try:
        statement = obj["create"].encode(codec, "surrogateescape")
    except UnicodeEncodeError:
        charset, codec, statement = "utf8mb4", "utf-8", sql_bytes(obj["create"])
    collation = obj.get("collation_connection") or "utf8mb4_general_ci"
    context = (b"SET SESSION character_set_client = " + text_literal(charset)
               + b", collation_connection = " + text_literal(collation) + b";\n")
    mode = b"SET SESSION sql_mode = " + text_literal(obj.get("sql_mode") or "")
    if obj.get("time_zone"):
        mode += b", time_zone = " + text_literal(obj["time_zone"])
    mode += b";\n"
    delimiter = _delimiter_for(statement, codec)
    if delimiter is not None:
        return (context + mode + b"DELIMITER " + delimiter + b"\n" + statement + delimiter
                + b"\nDELIMITER ;\n" + DEFAULTS)
    text = (b"0x" + statement.hex().encode() if codec in _MULTIBYTE
            else b"_binary" + literal(statement))
    return (context + b"SET @snapkeep_statement = " + text + b";\n" + mode
            + b"EXECUTE IMMEDIATE @snapkeep_statement;\n" + DEFAULTS
            + b"SET @snapkeep_statement = NULL;\n")


def statement(sql: str) -> bytes:
    """A server-written statement (SHOW CREATE TABLE or SEQUENCE) in the script's utf8mb4
    session: as it is, unless it holds a raw CR or NUL the client would change (the server
    escapes those in what it writes, so this is a guard)."""
    raw = sql_bytes(sql)
    if b"\r" not in raw and b"\0" not in raw:
        return raw + b";\n"
    return (b"SET @snapkeep_statement = _binary" + literal(raw) + b";\n"
            b"EXECUTE IMMEDIATE @snapkeep_statement;\nSET @snapkeep_statement = NULL;\n")


def _delimiter_for(statement: bytes, codec: str) -> bytes | None:
    """A delimiter the client finds only at the end of ``statement``; None when the client
    would change the statement (see the module doc)."""
    if codec in _MULTIBYTE and not statement.isascii():
        return None
    if any(s in statement for s in _CLIENT_TOUCHES) or b"delimiter" in statement.lower():
        return None
    for d in _DELIMITERS:
        if (statement + d).find(d) == len(statement):
            return d
    return None


def alter_database_collation(collation: str) -> bytes:
    """Switch the database (the one selected on the command line) to ``collation``."""
    return b"ALTER DATABASE COLLATE " + _word(collation) + b";\n"


def alter_database(charset: str, collation: str, comment: str | None = None) -> bytes:
    sql = b"ALTER DATABASE CHARACTER SET " + _word(charset) + b" COLLATE " + _word(collation)
    if comment is not None:
        sql += b" COMMENT " + text_literal(comment)
    return sql + b";\n"


def _word(name: str) -> bytes:
    """A character set or collation name as the statement takes it (never quoted there)."""
    if not name.replace("_", "").isalnum() or not name.isascii():
        raise RepositoryError(f"the snapshot's database description names the character set "
                              f"or collation {name!r}, which is not a valid name")
    return name.encode("ascii")


def create_objects(description: dict[str, Any]) -> list[bytes]:
    """Routines, views, triggers, events in the restore's order, each under its database
    collation (``objects.create_all``), then the database's charset, collation, comment."""
    charset, collation = description["charset"], description["collation"]
    out: list[bytes] = []
    current = [collation]  # the script sets the database's collation before any table

    def under_collation(obj: dict[str, Any]) -> None:
        wanted = obj.get("database_collation") or collation
        if wanted != current[0]:
            out.append(alter_database_collation(wanted))
            current[0] = wanted

    for routine in description.get("routines", []):
        under_collation(routine)
        out.append(create_object(routine))
    under_collation({})
    out.extend(create_object(view) for view in description.get("views", []))
    for obj in [*description.get("triggers", []), *description.get("events", [])]:
        under_collation(obj)
        out.append(create_object(obj))
    out.append(alter_database(charset, collation, description.get("comment") or ""))
    return out
