"""Walking archived binlog events to plan a point-in-time replay (docs/pitr.md).

Only the 19-byte event headers are parsed, plus the few bodies that decide the plan: GTID
events (a transaction's start, its GTID and its time), Query events (their default
database and text) and Table_map events (the database and table a row event changes).
``scan`` finds where the replay stops (the first transaction whose GTID event is at or
after the stop time, or the end of the named GTID's transaction) and refuses what the
replay could not do exactly:

- a restore of the same database in the range: snapkeep's own shadow, old and journal
  databases (``names.py``) appear in its events (the shadow's rows, the cut-over's RENAME TABLE);
  replaying across it would replay the restore's own moves;
- a statement of the database whose object is named with a database (``CREATE TABLE
  other.t``, ``ALTER TABLE shop.t``): the stock tool's ``--rewrite-db`` renames only the
  default database, so it would change the live database (or another one) instead of the
  shadow.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from snapkeep.engines.mysql.binlog_replay_types import ReplayPiece, ReplayStop
from snapkeep.engines.mysql.names import journal_name, old_name, shadow_name
from snapkeep.errors import IntegrityError, UsageError

HEADER = 19
QUERY, ROTATE, FORMAT_DESCRIPTION, XID, TABLE_MAP = 2, 4, 15, 16, 19
GTID = 162
FL_STANDALONE = 1  # a GTID event's flag: a transaction of one statement, no COMMIT
_CONTROL = re.compile(rb"^\s*(BEGIN|COMMIT|ROLLBACK|XA\s)", re.I)
_DDL_OBJECT = re.compile(
    rb"^\s*(?:CREATE|ALTER|DROP|RENAME|TRUNCATE)\b.*?\b(?:TABLE|VIEW|TRIGGER|PROCEDURE|"
    rb"FUNCTION|EVENT|SEQUENCE|INDEX)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?"
    rb"(`(?:[^`]|``)+`|[\w$]+)\s*\.\s*(`|[A-Za-z_$])", re.I | re.S)


@dataclass
class Event:
    file: str
    pos: int  # start offset in ``file``
    end: int
    timestamp: int
    type: int
    server_id: int
    body: memoryview  # after the header, without the checksum


@dataclass
class ScanResult:
    """Where the replay stops and what it replays of the database (its transactions)."""

    stop_file: str | None = None  # None: the archive ended first
    stop_position: int | None = None
    files: list[str] = field(default_factory=list)  # start file .. stop (or last) file
    transactions: int = 0
    events: int = 0
    last_time: datetime | None = None
    last_gtid: str | None = None
    # the end of the last complete transaction: where a replay to the archive's end stops
    end_file: str | None = None
    end_position: int | None = None

    @property
    def reached_stop(self) -> bool:
        return self.stop_file is not None


def events(pieces: Iterable[ReplayPiece]) -> Iterator[Event]:
    """Every event of the pieces, in order (a piece's bytes are whole events)."""
    checksum = 4
    for piece in pieces:
        data = memoryview(b"".join(piece.read()))
        if len(data) != piece.end - piece.start:
            raise IntegrityError(f"archived binlog piece {piece.file}:{piece.start} has "
                                 f"{len(data)} bytes, its record says {piece.end - piece.start}")
        off = 0
        while off < len(data):
            ts, kind, server_id, size, log_pos = struct.unpack_from("<IBIII", data, off)
            pos = piece.start + off
            if size < HEADER or off + size > len(data):
                raise IntegrityError(f"archived binlog {piece.file} has a damaged event at {pos}")
            body = data[off + HEADER: off + size]
            if kind == FORMAT_DESCRIPTION:
                # the checksum algorithm (1: CRC32) is the byte before the event's own CRC
                checksum = 4 if len(body) >= 5 and body[-5] == 1 else 0
                body = body[:-checksum] if checksum else body
            elif checksum:
                body = body[:-checksum]
            yield Event(piece.file, pos, pos + size, ts, kind, server_id, body)
            off += size


def query_parts(body: memoryview) -> tuple[str, bytes]:
    """(default database, statement text) of a Query event's body."""
    db_len = body[8]
    status_len = struct.unpack_from("<H", body, 11)[0]
    start = 13 + status_len
    db = bytes(body[start:start + db_len]).decode("utf-8", "replace")
    return db, bytes(body[start + db_len + 1:])


def table_map_parts(body: memoryview) -> tuple[str, str]:
    """(database, table) of a Table_map event's body."""
    off = 8
    db_len = body[off]
    db = bytes(body[off + 1: off + 1 + db_len]).decode("utf-8", "replace")
    off += 2 + db_len
    t_len = body[off]
    return db, bytes(body[off + 1: off + 1 + t_len]).decode("utf-8", "replace")


def gtid_of(ev: Event) -> tuple[str, int]:
    """(``domain-server-seq``, flags) of a GTID event."""
    seq, domain, flags = struct.unpack_from("<QIB", ev.body, 0)
    return f"{domain}-{ev.server_id}-{seq}", flags


def _unquote(name: bytes) -> str:
    text = name.decode("utf-8", "replace")
    return text[1:-1].replace("``", "`") if text.startswith("`") else text


def scan(pieces: Iterable[ReplayPiece], *, start_file: str, start_position: int,
         source_db: str, stop: ReplayStop) -> ScanResult:
    """The plan of a replay of ``source_db`` from ``start_file:start_position`` to ``stop``
    over ``pieces`` (which begin at or before the start). Raises UsageError for what the
    replay cannot do exactly (see the module)."""
    if (stop.before_time is None) == (stop.after_gtid is None):
        raise ValueError("a replay stops at a time or after a GTID, exactly one")
    limit = int(stop.before_time.timestamp()) if stop.before_time is not None else None
    foreign = [f(source_db).encode() for f in (shadow_name, old_name, journal_name)]
    out = ScanResult()
    started = False
    in_txn = touched = False
    gtid: str | None = None
    txn_time = 0
    txn_events = 0
    standalone = ending_after_gtid = False

    def close_txn() -> None:
        nonlocal in_txn, touched
        if in_txn and touched:
            out.transactions += 1
            out.events += txn_events
            out.last_time = datetime.fromtimestamp(txn_time, UTC)
            out.last_gtid = gtid
        in_txn = touched = False

    for ev in events(pieces):
        if not started:
            if ev.file != start_file or ev.pos < start_position:
                continue
            started = True
        if not out.files or out.files[-1] != ev.file:
            out.files.append(ev.file)
        if ev.type == GTID:
            close_txn()
            g, flags = gtid_of(ev)
            if limit is not None and ev.timestamp >= limit:
                out.stop_file, out.stop_position = ev.file, ev.pos
                return out
            in_txn, gtid, txn_time, txn_events = True, g, ev.timestamp, 1
            standalone = bool(flags & FL_STANDALONE)
            ending_after_gtid = stop.after_gtid is not None and g == stop.after_gtid
            continue
        if ev.type in (FORMAT_DESCRIPTION, ROTATE):
            continue
        txn_events += 1
        if ev.type in (QUERY, TABLE_MAP) and any(n in bytes(ev.body) for n in foreign):
            when = datetime.fromtimestamp(ev.timestamp, UTC).isoformat()
            raise UsageError(
                f"the database {source_db} was restored by snapkeep at {when} (binlog "
                f"{ev.file}:{ev.pos}), between the base snapshot and the time asked: a replay "
                f"cannot cross a restore; restore from a snapshot taken after that restore")
        if ev.type == QUERY:
            db, text = query_parts(ev.body)
            ends = False
            if _CONTROL.match(text):
                ends = re.match(rb"^\s*(COMMIT|ROLLBACK)", text, re.I) is not None
                if not ends:
                    continue
            m = _DDL_OBJECT.match(text)
            if m and (db == source_db or _unquote(m.group(1)) == source_db):
                raise UsageError(
                    f"a statement at binlog {ev.file}:{ev.pos} names its object with a "
                    f"database ({text[:80].decode('utf-8', 'replace')!r}): the replay renames "
                    f"only the default database, so it cannot apply it to the restored copy; "
                    f"restore to a time before it, or from a snapshot taken after it")
            elif db == source_db:
                touched = True
            ends = ends or standalone  # a DDL's transaction is its one statement
        elif ev.type == TABLE_MAP:
            if table_map_parts(ev.body)[0] == source_db:
                touched = True
            continue
        elif ev.type == XID:
            ends = True
        else:
            continue
        if ends:
            close_txn()
            out.end_file, out.end_position = ev.file, ev.end
            if ending_after_gtid:
                out.stop_file, out.stop_position = ev.file, ev.end
                return out
    close_txn()
    return out
