"""The parts of binlog events the replayer reads or rewrites (docs/pitr.md, Replay).

Only what replay needs is decoded: the 19-byte header (``binlog_stream.HEADER``), the
Format_description event (checksum algorithm, post-header lengths), Table_map events
(table id, database and table name; the database renamed), the table id and flags of row
events, GTID events, and Query events (status variables, default database, statement).
Row images are never decoded: the server applies them itself from ``BINLOG`` statements.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from snapkeep.engines.mysql.binlog_stream import HEADER

HEADER_LEN = 19
QUERY, ROTATE, INTVAR, RAND, USER_VAR = 2, 4, 5, 13, 14
FORMAT_DESCRIPTION, XID, TABLE_MAP = 15, 16, 19
ANNOTATE_ROWS, GTID_MARIADB, QUERY_COMPRESSED, START_ENCRYPTION = 160, 162, 165, 164
GTID_MYSQL, ANONYMOUS_GTID_MYSQL = 33, 34
# Write/Update/Delete rows: v1 (23-25), MySQL's v2 (30-32), MariaDB's compressed v1/v2
ROWS = frozenset({23, 24, 25, 30, 31, 32, 166, 167, 168, 169, 170, 171})
GTID = frozenset({GTID_MARIADB, GTID_MYSQL, ANONYMOUS_GTID_MYSQL})
STMT_END_F = 0x0001
GTID_STANDALONE = 0x01  # MariaDB GTID flag: a transaction of one statement, no BEGIN/COMMIT
_QUERY_POST_HEADER = struct.Struct("<IIBHH")  # thread id, exec time, db length, error, vars


class BinlogFormatError(ValueError):
    """Bytes that are not the binlog events they should be."""


@dataclass(frozen=True)
class Format:
    """A binlog file's Format_description event, as the other events are read with."""

    event: bytes
    checksum: bool  # events end with a CRC32
    post_header: bytes  # post-header length of each event type (type - 1)

    def post_header_len(self, kind: int, default: int) -> int:
        return self.post_header[kind - 1] if kind - 1 < len(self.post_header) else default

    def table_id_len(self, kind: int) -> int:
        """Table ids are 6 bytes (4 in the oldest formats, post-header length 6)."""
        return 4 if self.post_header_len(kind, 8) == 6 else 6


def parse_format(ev: bytes) -> Format:
    """The Format_description event: the checksum algorithm byte sits 5 bytes before its
    end (algorithm + CRC32 field, which the event carries whatever the algorithm)."""
    # binlog version (2), server version (50), created (4), then the common header length
    header_len = ev[HEADER_LEN + 56]
    if header_len != HEADER_LEN:
        raise BinlogFormatError(f"binlog event header length {header_len}, not {HEADER_LEN}")
    alg = ev[-5]
    return Format(ev, alg == 1, ev[HEADER_LEN + 57:-5])


def events(data: bytes, offset: int = 0) -> Iterator[tuple[int, int]]:
    """(start, end) of each whole event in ``data`` from ``offset``."""
    n = len(data)
    while offset < n:
        if n - offset < HEADER_LEN:
            raise BinlogFormatError(f"{n - offset} bytes left, less than an event header")
        size = int.from_bytes(data[offset + 9:offset + 13], "little")
        if size < HEADER_LEN or offset + size > n:
            raise BinlogFormatError(f"an event of {size} bytes at {offset} does not fit")
        yield offset, offset + size
        offset += size


def _with_crc(fmt: Format, body: bytes | bytearray) -> bytes:
    if fmt.checksum:
        return bytes(body) + (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(body)


def _payload_end(fmt: Format, ev: bytes) -> int:
    return len(ev) - 4 if fmt.checksum else len(ev)


@dataclass(frozen=True)
class TableMap:
    table_id: int
    database: str
    table: str
    db_at: int  # offset of the database name's length byte


def table_map(fmt: Format, ev: bytes) -> TableMap:
    id_len = fmt.table_id_len(TABLE_MAP)
    table_id = int.from_bytes(ev[HEADER_LEN:HEADER_LEN + id_len], "little")
    at = HEADER_LEN + fmt.post_header_len(TABLE_MAP, 8)
    db_len = ev[at]
    database = ev[at + 1:at + 1 + db_len].decode("utf-8", "surrogateescape")
    t_at = at + 1 + db_len + 1
    table = ev[t_at + 1:t_at + 1 + ev[t_at]].decode("utf-8", "surrogateescape")
    return TableMap(table_id, database, table, at)


def rename_database(fmt: Format, ev: bytes, tm: TableMap, database: str) -> bytes:
    """The Table_map event naming ``database`` instead: its size, end position and CRC32
    follow the new length."""
    name = database.encode("utf-8", "surrogateescape")
    if len(name) > 255:
        raise BinlogFormatError(f"database name {database!r} is longer than 255 bytes")
    old_len = ev[tm.db_at]
    body = bytearray(ev[:tm.db_at])
    body.append(len(name))
    body += name
    body += ev[tm.db_at + 1 + old_len:_payload_end(fmt, ev)]
    size = len(body) + (4 if fmt.checksum else 0)
    log_pos = int.from_bytes(ev[13:17], "little")
    struct.pack_into("<II", body, 9, size, log_pos + size - len(ev) if log_pos else 0)
    return _with_crc(fmt, body)


def rows_table_id(fmt: Format, ev: bytes, kind: int) -> tuple[int, int]:
    """A row event's table id and flags."""
    id_len = fmt.table_id_len(kind)
    table_id = int.from_bytes(ev[HEADER_LEN:HEADER_LEN + id_len], "little")
    flags = int.from_bytes(ev[HEADER_LEN + id_len:HEADER_LEN + id_len + 2], "little")
    return table_id, flags


def with_statement_end(fmt: Format, ev: bytes, kind: int) -> bytes:
    """The row event with STMT_END_F set: it ends its statement on the server (the event
    that ended it in the source was another database's, left out)."""
    at = HEADER_LEN + fmt.table_id_len(kind)
    body = bytearray(ev[:_payload_end(fmt, ev)])
    body[at] |= STMT_END_F
    return _with_crc(fmt, body)


# MariaDB's compressed row events and the plain ones a BINLOG statement accepts instead
UNCOMPRESSED = {166: 23, 167: 24, 168: 25, 169: 30, 170: 31, 171: 32}
_UPDATES = frozenset({24, 31})


def uncompressed_rows(fmt: Format, ev: bytes, kind: int) -> bytes:
    """A compressed row event (log_bin_compress) as the plain one: the server refuses
    compressed events in BINLOG statements. Only the row images are compressed; the
    column count and bitmaps before them are not."""
    plain = UNCOMPRESSED[kind]
    at = HEADER_LEN + fmt.post_header_len(kind, 10 if plain >= 30 else 8)
    if plain >= 30:  # v2: extra data, its length (2 bytes, counted in) in the post-header
        at += int.from_bytes(ev[at - 2:at], "little") - 2
    width, at = _packed_int(ev, at)
    at += ((width + 7) // 8) * (2 if plain in _UPDATES else 1)
    body = bytearray(ev[:at])
    body[4] = plain
    body += uncompress(ev[at:_payload_end(fmt, ev)])
    size = len(body) + (4 if fmt.checksum else 0)
    log_pos = int.from_bytes(ev[13:17], "little")
    struct.pack_into("<II", body, 9, size, log_pos + size - len(ev) if log_pos else 0)
    return _with_crc(fmt, body)


def _packed_int(data: bytes, at: int) -> tuple[int, int]:
    first = data[at]
    if first < 251:
        return first, at + 1
    n = {252: 2, 253: 3, 254: 8}.get(first)
    if n is None:
        raise BinlogFormatError(f"a packed integer starting with {first}")
    return int.from_bytes(data[at + 1:at + 1 + n], "little"), at + 1 + n


def gtid(ev: bytes, kind: int) -> tuple[str | None, int]:
    """A GTID event's GTID (``domain-server-seq``; MySQL: ``uuid:n``; None for MySQL's
    anonymous ones) and its MariaDB flags."""
    if kind == GTID_MARIADB:
        seq, domain, flags = struct.unpack_from("<QIB", ev, HEADER_LEN)
        server_id = struct.unpack_from("<I", ev, 5)[0]
        return f"{domain}-{server_id}-{seq}", flags
    if kind == GTID_MYSQL:
        sid = ev[HEADER_LEN + 1:HEADER_LEN + 17].hex()
        gno = struct.unpack_from("<q", ev, HEADER_LEN + 17)[0]
        return f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:]}:{gno}", 0
    return None, 0


@dataclass
class Query:
    """A Query event: the statement, its default database and the session it ran in."""

    database: str
    text: bytes
    timestamp: int
    microseconds: int | None = None
    flags2: int | None = None
    sql_mode: int | None = None
    auto_increment: tuple[int, int] | None = None  # increment, offset
    charset: tuple[int, int, int] | None = None  # client, connection, server collations
    time_zone: str | None = None
    lc_time_names: int | None = None
    collation_database: int | None = None
    unknown: list[int] = field(default_factory=list)


# fixed sizes of the status variables (codes from the server's log_event.h)
_FIXED = {0: 4, 1: 8, 3: 4, 4: 6, 7: 2, 8: 2, 9: 8, 10: 4, 13: 3, 16: 1, 17: 8, 18: 2, 19: 1,
          20: 1, 128: 3, 129: 8, 130: 1}


def query(fmt: Format, ev: bytes, kind: int) -> Query:
    _thread, _exec, db_len, _err, vars_len = _QUERY_POST_HEADER.unpack_from(ev, HEADER_LEN)
    at = HEADER_LEN + fmt.post_header_len(QUERY, 13)
    status, at = ev[at:at + vars_len], at + vars_len
    database = ev[at:at + db_len].decode("utf-8", "surrogateescape")
    text = ev[at + db_len + 1:_payload_end(fmt, ev)]
    if kind == QUERY_COMPRESSED:
        text = uncompress(text)
    q = Query(database, text, int.from_bytes(ev[0:4], "little"))
    _status_vars(q, status)
    return q


def uncompress(data: bytes) -> bytes:
    """MariaDB's compressed event payload: one byte ``0x80 | n``, the length in ``n``
    big-endian bytes, then zlib."""
    if not data or not data[0] & 0x80:
        raise BinlogFormatError("a compressed binlog event without its header byte")
    n = data[0] & 0x07
    size = int.from_bytes(data[1:1 + n], "big")
    out = zlib.decompress(data[1 + n:])
    if len(out) != size:
        raise BinlogFormatError(f"a compressed binlog event of {len(out)} bytes, not {size}")
    return out


def _status_vars(q: Query, data: bytes) -> None:
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        i += 1
        if code == 0:
            q.flags2 = int.from_bytes(data[i:i + 4], "little")
        elif code == 1:
            q.sql_mode = int.from_bytes(data[i:i + 8], "little")
        elif code == 3:
            q.auto_increment = struct.unpack_from("<HH", data, i)
        elif code == 4:
            q.charset = struct.unpack_from("<HHH", data, i)
        elif code == 7:
            q.lc_time_names = int.from_bytes(data[i:i + 2], "little")
        elif code == 8:
            q.collation_database = int.from_bytes(data[i:i + 2], "little")
        elif code in (13, 128):  # microseconds (MySQL, MariaDB)
            q.microseconds = int.from_bytes(data[i:i + 3], "little")
        if code in _FIXED:
            i += _FIXED[code]
        elif code == 2:  # catalog: length, name, NUL
            i += 1 + data[i] + 1
        elif code == 5:
            q.time_zone = data[i + 1:i + 1 + data[i]].decode("ascii", "replace")
            i += 1 + data[i]
        elif code == 6:  # catalog
            i += 1 + data[i]
        elif code == 11:  # invoker: user and host
            i += 1 + data[i]
            i += 1 + data[i]
        elif code == 12:  # updated databases: a count, NUL-terminated names
            count = data[i]
            i += 1
            if count < 254:
                for _ in range(count):
                    i = data.index(b"\0", i) + 1
        else:  # a variable this reader does not know: the rest cannot be located
            q.unknown.append(code)
            return


def intvar(ev: bytes) -> tuple[int, int]:
    """An Intvar event: (1 = LAST_INSERT_ID, 2 = INSERT_ID; value)."""
    kind, value = struct.unpack_from("<BQ", ev, HEADER_LEN)
    return kind, value


def header(ev: bytes) -> tuple[int, int, int, int, int, int]:
    return HEADER.unpack_from(ev)
