"""The server's binary log as a replica receives it: ``COM_BINLOG_DUMP`` spoken over a
PyMySQL connection, only the 19-byte event headers parsed (docs/pitr.md, Why this client).

Every event the server sends is one packet ``00 <event>``; an event is part of the binlog
file exactly when its header's ``log_pos`` (its end offset) is the current offset plus its
size. Everything else is the protocol's own: a fake Rotate naming the file and offset the
stream is at (flag ``LOG_EVENT_ARTIFICIAL_F``, ``log_pos`` 0), the Format_description the
server resends when a stream starts inside a file (``log_pos`` 0), and heartbeats. The
session announces that it handles checksums (``@master_binlog_checksum``) and GTID events
(``@mariadb_slave_capability``), and the dump asks for Annotate_rows events, so the bytes
received are the file's bytes; each event's CRC32 is checked where the server writes one.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysql.constants import COMMAND

from snapkeep.engines.mysql.connect import connect, query, query_text
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.errors import ServiceUnavailable

HEADER = struct.Struct("<IBIIIH")  # timestamp, type, server_id, size, log_pos, flags
ROTATE, FORMAT_DESCRIPTION, HEARTBEAT = 4, 15, 27
GTID_MYSQL, GTID_MARIADB = 33, 162
ARTIFICIAL = 0x20
# COM_BINLOG_DUMP flags: send Annotate_rows events (MariaDB: without it they are left out)
SEND_ANNOTATE_ROWS = 0x02


@dataclass(frozen=True)
class Event:
    """One event of a binlog file: its bytes and what the archive records of it."""

    data: bytes
    file: str
    start: int
    end: int
    timestamp: int
    type: int
    gtid: str | None


@dataclass(frozen=True)
class Idle:
    """Nothing new (a heartbeat): the stream is at ``file``:``position``."""

    file: str
    position: int


class StreamError(ServiceUnavailable):
    """The stream is not what the file holds (a hole, a bad checksum)."""


def binary_logs(target: MySQLTarget) -> list[tuple[str, int]]:
    """The server's binlog files and sizes, oldest first (``SHOW BINARY LOGS``)."""
    conn = connect(target, database=None, doing="listing the binary logs")
    try:
        return [(str(r[0]), int(r[1])) for r in query_text(conn, "SHOW BINARY LOGS")]
    finally:
        conn.close()


class BinlogStream:
    """Events of the server's binlog from ``file``:``position`` on, for ever (heartbeats
    every ``heartbeat`` seconds while nothing happens). Iterate with ``events()``."""

    def __init__(self, target: MySQLTarget, file: str, position: int, *, server_id: int,
                 heartbeat: float) -> None:
        self.file, self.position = file, position
        # a server gone silent (heartbeats stop) is noticed, and the stream reconnected
        self.conn: Any = connect(target, database=None, doing="reading the binary log",
                                 read_timeout=max(10, int(heartbeat * 5)))
        query(self.conn, "SET @master_binlog_checksum = @@GLOBAL.binlog_checksum")
        query(self.conn, "SET @mariadb_slave_capability = 4")  # GTID events as they are
        query(self.conn, f"SET @master_heartbeat_period = {int(heartbeat * 1e9)}")
        crc = query_text(self.conn, "SELECT @@GLOBAL.binlog_checksum")[0][0]
        self.checksum = str(crc).upper() == "CRC32"
        self.conn._execute_command(COMMAND.COM_BINLOG_DUMP, struct.pack(
            "<IHI", position, SEND_ANNOTATE_ROWS, server_id) + file.encode())

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a connection whose server is gone
            self.conn.close()

    def events(self) -> Iterator[Event | Idle]:
        while True:
            packet = self.conn._read_packet()
            raw = packet.get_all_data()
            if raw[:1] == b"\xfe" and len(raw) < 9:
                raise pymysql.err.OperationalError(2013, "the server ended the binlog stream")
            ev = raw[1:]
            ts, kind, _sid, size, log_pos, flags = HEADER.unpack_from(ev)
            if size != len(ev):
                raise StreamError(f"binlog event at {self.file}:{self.position} is "
                                  f"{len(ev)} bytes, its header says {size}")
            in_file = (log_pos != 0 and not flags & ARTIFICIAL and kind != HEARTBEAT)
            if in_file:
                if log_pos != self.position + size:
                    raise StreamError(
                        f"binlog event ending at {self.file}:{log_pos} does not follow "
                        f"{self.position} (size {size}): the stream has a hole")
                if self.checksum and zlib.crc32(ev[:-4]) != int.from_bytes(ev[-4:], "little"):
                    raise StreamError(f"binlog event at {self.file}:{self.position} fails "
                                      "its CRC32 checksum")
                out = Event(ev, self.file, self.position, log_pos, ts, kind, _gtid(ev, kind))
                self.position = log_pos
                yield out
            if kind == ROTATE and (in_file or flags & ARTIFICIAL):
                body = ev[19:-4] if self.checksum else ev[19:]  # fake ones carry a CRC too
                self.file = body[8:].decode("utf-8", "replace")
                self.position = struct.unpack_from("<Q", body)[0]
                yield Idle(self.file, self.position)
            elif kind == HEARTBEAT:
                yield Idle(self.file, self.position)


def _gtid(ev: bytes, kind: int) -> str | None:
    if kind == GTID_MARIADB:
        seq, domain = struct.unpack_from("<QI", ev, 19)
        server_id = struct.unpack_from("<I", ev, 5)[0]
        return f"{domain}-{server_id}-{seq}"
    if kind == GTID_MYSQL:
        sid = ev[20:36].hex()
        gno = struct.unpack_from("<q", ev, 36)[0]
        return f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:]}:{gno}"
    return None
