"""Private MariaDB servers that write a binary log, and what the binlog tests read of it."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

from snapkeep.sandbox import PrivateMariaDB

# What point-in-time recovery needs of a server (docs/pitr.md, Preconditions).
BINLOG_OPTIONS = ("--log-bin=mysql-bin", "--binlog-format=ROW", "--server-id=1")


def binlog_server(basedir: Path, *more: str) -> PrivateMariaDB:
    """A started private server with the binary log on (``more``: further options)."""
    return PrivateMariaDB(basedir, (*BINLOG_OPTIONS, *more)).start()


def binlog_files(server: PrivateMariaDB) -> list[str]:
    """The server's binlog files, oldest first (``SHOW BINARY LOGS``)."""
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            return [str(r[0]) for r in cur.fetchall()]
    finally:
        conn.close()


def master_status(server: PrivateMariaDB) -> tuple[str, int]:
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            file, pos = cur.fetchone()[:2]
            return str(file), int(pos)
    finally:
        conn.close()


def file_bytes(server: PrivateMariaDB, name: str) -> bytes:
    """A binlog file as it is once closed: the file the server writes to has the
    "in use" flag (LOG_EVENT_BINLOG_IN_USE_F) set in its Format_description event's
    header, which the server clears when it closes the file and in what it sends."""
    data = bytearray((server.datadir / name).read_bytes())
    data[4 + 17] &= 0xFE
    return bytes(data)


def inserts_until(server: PrivateMariaDB, file: str, position: int) -> dict[str, int]:
    """How many rows the binlog inserts into each table (``db.table``) from its first file
    up to ``position`` in ``file``, as ``mariadb-binlog`` decodes them; under "GTID" the
    last GTID (its sequence number) before the position."""
    files = binlog_files(server)
    names = files[:files.index(file) + 1]
    out = subprocess.run(
        ["mariadb-binlog", "--no-defaults", "--base64-output=DECODE-ROWS", "-v",
         f"--stop-position={position}", *[str(server.datadir / n) for n in names]],
        capture_output=True, text=True, check=True).stdout
    counts: dict[str, int] = {}
    for m in re.finditer(r"^### INSERT INTO `([^`]+)`\.`([^`]+)`", out, re.M):
        key = f"{m.group(1)}.{m.group(2)}"
        counts[key] = counts.get(key, 0) + 1
    gtids = re.findall(r"GTID (\d+-\d+-(\d+))", out)
    counts["GTID"] = int(gtids[-1][1]) if gtids else 0
    return counts


class Writer:
    """A thread committing one-row INSERTs into ``tables`` in turn until stopped."""

    def __init__(self, server: PrivateMariaDB, db: str, tables: list[str]) -> None:
        self.server, self.db, self.tables = server, db, tables
        self.written = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = self.server.connect(self.db)
        try:
            while not self._stop.is_set():
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO `{self.tables[self.written % len(self.tables)]}` "
                                "(v) VALUES (%s)", (self.written,))
                self.written += 1
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.errors.append(e)
        finally:
            conn.close()

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def wait_for(self, n: int, timeout: float = 60) -> None:
        """Until ``n`` rows more than now are written (bounded)."""
        target = self.written + n
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while self.written < target and not deadline.is_set() and not self.errors:
                deadline.wait(0.01)
        finally:
            timer.cancel()
        assert not self.errors, self.errors
        assert self.written >= target, f"the writer wrote {self.written} of {target} rows"


def replay(server: PrivateMariaDB, database: str, start: tuple[str, int],
           stop: tuple[str, int]) -> None:
    """Apply the binlog's events of ``database`` from ``start`` up to ``stop`` (both
    file:offset) with the stock tools: ``mariadb-binlog`` piped into ``mariadb``."""
    files = binlog_files(server)
    names = files[files.index(start[0]):files.index(stop[0]) + 1]
    events = subprocess.run(
        ["mariadb-binlog", "--no-defaults", f"--database={database}",
         f"--start-position={start[1]}", f"--stop-position={stop[1]}",
         *[str(server.datadir / n) for n in names]],
        capture_output=True, check=True).stdout
    subprocess.run([*server.client_args(), database], input=events, check=True,
                   capture_output=True)
