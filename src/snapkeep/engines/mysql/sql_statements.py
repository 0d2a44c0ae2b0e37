"""The filter between a SQL script and the ``mariadb`` client of an import: statements
that would leave the scratch database (``USE``, ``CREATE DATABASE``, ``DROP DATABASE``
of a ``--databases`` dump) are blanked out, one line for one line, so the client's line
numbers stay those of the file; a ``CREATE DATABASE`` that sets a character set,
collation or comment becomes an ``ALTER DATABASE`` of the scratch database.

Streaming: memory is bounded by the read size plus one held-back line start (``PEEK``).
Only statements that start a line are looked at, one per line — as the dump tools write
them; lines inside ``DELIMITER`` blocks (routine and trigger bodies) pass unchanged.
"""

from __future__ import annotations

import re

from snapkeep.errors import UsageError

PEEK = 64 << 10  # a line start is held back until its line is complete, up to this many bytes

_CANDIDATE = re.compile(rb"^[ \t]*(?:/\*!\d*[ \t]*)?(?:create|drop|use|delimiter)\b",
                        re.I | re.M)
_DELIMITER = re.compile(rb"^\s*delimiter\s+(\S+)", re.I)
_DB_LEVEL = re.compile(rb"^\s*(?:/\*!\d*\s*)?(?:(?:create|drop)\s+(?:database|schema)\b|use\b)",
                       re.I)
_NAME = rb"(`(?:[^`]|``)+`|[\w$]+)"
# what follows the name: anything but a ';' outside quotes (one statement per line)
_REST = rb"((?:[^;'\"]|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")*?)"
_CREATE = re.compile(rb"^\s*(/\*!\d*\s*)?create\s+(?:database|schema)\s+"
                     rb"(?:/\*!\d*\s*if\s+not\s+exists\s*\*/\s*|if\s+not\s+exists\s+)?"
                     + _NAME + _REST + rb"\s*;\s*$", re.I | re.S)
_DROP = re.compile(rb"^\s*(?:/\*!\d*\s*)?drop\s+(?:database|schema)\s+(?:if\s+exists\s+)?"
                   + _NAME + rb"\s*(?:\*/)?\s*;\s*$", re.I | re.S)
_USE = re.compile(rb"^\s*use\s+" + _NAME + rb"\s*;?\s*$", re.I | re.S)
_DEFAULTS = re.compile(rb"character\s+set|charset|collate|comment", re.I)


def _unquote(raw: bytes) -> str:
    name = raw.decode("utf-8", "replace")
    if name.startswith("`"):
        name = name[1:-1].replace("``", "`")
    return name


class DatabaseStatements:
    """A streaming filter over a SQL script: database-level statements at a line start
    are replaced by a line of their own, so line numbers do not change. Lines between a
    ``DELIMITER`` other than ``;`` and the next one (routine and trigger bodies, as the dump
    tools write them) pass unchanged.

    ``feed`` returns what may go to the client so far (a line start is held back until
    its line is complete, up to ``PEEK`` bytes); ``finish`` returns the rest. Raises
    UsageError for a script that switches between databases, or whose database-level
    statement cannot be rewritten safely. ``database`` is the database the script named.
    """

    def __init__(self, source_name: str) -> None:
        self.source_name = source_name
        self.database: str | None = None
        self.left_out = 0
        self._line = 1  # line number at ``_counted`` in the current buffer
        self._pending = b""
        self._mid_line = False
        self._delimiter = b";"  # the client's (``DELIMITER ;;`` around routine bodies)

    def feed(self, data: bytes) -> bytes:
        buf = self._pending + data if self._pending else data
        self._pending = b""
        out: list[bytes] = []
        pos = 0
        if self._mid_line:
            nl = buf.find(b"\n")
            if nl < 0:
                return buf
            out.append(buf[:nl + 1])
            self._line += 1
            pos = nl + 1
            self._mid_line = False
        end = buf.rfind(b"\n", pos) + 1 or pos  # the end of the last complete line
        pos = self._rewrite(buf, pos, end, out)
        tail = buf[pos:]
        if len(tail) < PEEK:
            self._pending = tail
        else:
            if _DB_LEVEL.match(tail[:256]):
                raise self._refuse(self._line, "a database-level statement longer than "
                                   f"{PEEK >> 10} KiB on one line")
            out.append(tail)
            self._mid_line = True
        return b"".join(out)

    def finish(self) -> bytes:
        buf, self._pending = self._pending, b""
        out: list[bytes] = []
        pos = self._rewrite(buf, 0, len(buf), out)
        out.append(buf[pos:])
        return b"".join(out)

    def _rewrite(self, buf: bytes, pos: int, end: int, out: list[bytes]) -> int:
        """Copy complete lines ``buf[pos:end]`` into ``out``, rewritten; return ``end``."""
        counted = pos
        for m in _CANDIDATE.finditer(buf, pos, end):
            start = m.start()
            nl = buf.find(b"\n", start, end)
            stop = end if nl < 0 else nl + 1
            line = buf[start:stop]
            if d := _DELIMITER.match(line):
                self._delimiter = d.group(1)
                continue
            if self._delimiter != b";" or not _DB_LEVEL.match(line):
                continue  # a line of a routine's or trigger's body is theirs
            self._line += buf.count(b"\n", counted, start)
            counted = start
            out.append(buf[pos:start])
            out.append(self._replace(line, self._line))
            pos = stop
        out.append(buf[pos:end])
        self._line += buf.count(b"\n", counted, end)
        return end

    def _replace(self, line: bytes, number: int) -> bytes:
        newline = b"\n" if line.endswith(b"\n") else b""
        body = line.rstrip(b"\r\n")
        if m := _CREATE.match(body):
            versioned, name, rest = m.group(1), m.group(2), m.group(3)
            if versioned and rest.rstrip().endswith(b"*/"):
                rest = rest.rstrip()[:-2]
            self._named(_unquote(name), number)
            self.left_out += 1
            if _DEFAULTS.search(rest):  # keep the dumped database's charset and collation
                return b"ALTER DATABASE " + rest.strip() + b";" + newline
            return b"-- snapkeep import: CREATE DATABASE left out" + newline
        for pattern, what in ((_DROP, b"DROP DATABASE"), (_USE, b"USE")):
            if m := pattern.match(body):
                self._named(_unquote(m.group(1)), number)
                self.left_out += 1
                return b"-- snapkeep import: " + what + b" left out" + newline
        raise self._refuse(number, "a database-level statement snapkeep cannot rewrite "
                                   "(one statement per line is expected)")

    def _named(self, name: str, number: int) -> None:
        if self.database is None:
            self.database = name
        elif name != self.database:
            raise UsageError(
                f"{self.source_name} holds more than one database ({self.database!r}, then "
                f"{name!r} at line {number}); an import makes a snapshot of one: dump one "
                "database (`mariadb-dump DB`, or `--databases DB` with one name)")

    def _refuse(self, number: int, what: str) -> UsageError:
        return UsageError(f"{self.source_name} line {number}: {what}; put each USE, CREATE "
                          "DATABASE and DROP DATABASE on a line of its own, or dump without "
                          "--databases")
