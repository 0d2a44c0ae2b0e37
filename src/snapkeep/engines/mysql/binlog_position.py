"""The binary-log position a dump is consistent with: where a replay of archived binlog
events starts from this snapshot (docs/pitr.md).

Recorded in the description as ``"binlog": {"file", "position", "gtid", "method"}`` when
the server has ``log_bin`` on (absent otherwise). ``gtid`` is the server's GTID position
at that point ("" when it has none: MariaDB before its first GTID, MySQL without
``gtid_mode``). How the position is made exact (``method``):

- ``binlog_snapshot`` (MariaDB): after ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` the
  session's status variables ``binlog_snapshot_file``/``binlog_snapshot_position`` give
  the binlog position of that very snapshot (MariaDB takes the snapshot and reads the
  binlog's end under the commit ordering lock, so every transaction before it is in the
  snapshot and none after it). The dump's workers all started their snapshots while
  commits were blocked (or writes to the database were held, or there is one worker), so
  worker 0's position is that of every worker. ``BINLOG_GTID_POS(file, position)``
  turns it into the GTID position.
- ``commits_blocked`` (MySQL): read with ``SHOW MASTER STATUS`` (``SHOW BINARY LOG
  STATUS`` from 8.2) and ``@@gtid_executed`` while the dump's lock blocks every commit,
  or while the caller holds the database's writes (then exact for this database's
  events, which are all a replay of it applies). Without a lock MySQL has no exact
  position: none is recorded and the log says so.
"""

from __future__ import annotations

from typing import Any

from snapkeep.engines.mysql.backup_lock import Server
from snapkeep.engines.mysql.connect import DRIVER_ERRORS, StreamReader, text
from snapkeep.progress import Reporter


def _text(value: Any) -> str:
    return "" if value is None else str(text(value))


def read_position(reader: StreamReader, server: Server, *, commits_blocked: bool,
                  reporter: Reporter) -> dict[str, Any] | None:
    """The position of ``reader``'s consistent snapshot (just started), or None when the
    server writes no binlog or the position cannot be read exactly (logged)."""
    try:
        if _text(reader.execute("SELECT @@GLOBAL.log_bin")[0][0]) not in ("1", "ON"):
            return None
        if server.mariadb:
            return _mariadb(reader)
        if not commits_blocked:
            reporter.log("binlog position not recorded: MySQL gives an exact one only while "
                         "commits are blocked, and this dump took no lock")
            return None
        return _mysql(reader, server)
    except DRIVER_ERRORS as e:
        reporter.log(f"binlog position not recorded: {e.args[-1]}")
        return None


def _mariadb(reader: StreamReader) -> dict[str, Any] | None:
    status = {_text(k).lower(): _text(v) for k, v in reader.execute(
        "SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")}
    file, position = status.get("binlog_snapshot_file"), status.get("binlog_snapshot_position")
    if not file or not position:
        return None
    rows = reader.execute(f"SELECT BINLOG_GTID_POS('{_quote(file)}', {int(position)})")
    gtid = _text(rows[0][0]) if rows else ""
    return {"file": file, "position": int(position), "gtid": gtid, "method": "binlog_snapshot"}


def _mysql(reader: StreamReader, server: Server) -> dict[str, Any] | None:
    sql = ("SHOW BINARY LOG STATUS" if server.version >= (8, 2, 0) else "SHOW MASTER STATUS")
    rows = reader.execute(sql)
    if not rows:
        return None
    gtid = _text(reader.execute("SELECT @@GLOBAL.gtid_executed")[0][0])
    return {"file": _text(rows[0][0]), "position": int(_text(rows[0][1])),
            "gtid": gtid.replace("\n", ""), "method": "commits_blocked"}


def _quote(name: str) -> str:
    return name.replace("\\", "\\\\").replace("'", "\\'")
