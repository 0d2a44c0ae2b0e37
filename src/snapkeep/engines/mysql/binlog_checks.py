"""What point-in-time recovery needs of the server, each missing piece one line naming
its fix (``binlog:check``, and ``binlog:follow`` before it connects)."""

from __future__ import annotations

import re

from snapkeep.engines.mysql.backup_lock import Server
from snapkeep.engines.mysql.connect import connect, errors_as, query_text
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.errors import ServerSetupError

DOING = "checking the binary log settings"


def _cnf(setting: str) -> str:
    return (f"set {setting} in the server's configuration ([mysqld] {setting}) and "
            "restart it")


def binlog_problems(target: MySQLTarget) -> list[str]:
    """One line per precondition the server does not meet (empty: all met)."""
    conn = connect(target, database=None, doing=DOING)
    try:
        with errors_as(target, DOING):
            log_bin, fmt, image, server_id, version = query_text(
                conn, "SELECT @@GLOBAL.log_bin, @@GLOBAL.binlog_format, "
                      "@@GLOBAL.binlog_row_image, @@GLOBAL.server_id, VERSION()")[0]
            grants = [str(r[0]) for r in query_text(conn, "SHOW GRANTS")]
    finally:
        conn.close()
    out = []
    if str(log_bin) not in ("1", "ON"):
        out.append("log_bin is off: the server writes no binary log; "
                   + _cnf("log_bin=mysql-bin"))
    if str(fmt).upper() != "ROW":
        out.append(f"binlog_format is {fmt}: " + _cnf("binlog_format=ROW"))
    if str(image).upper() != "FULL":
        out.append(f"binlog_row_image is {image}: " + _cnf("binlog_row_image=FULL"))
    if int(server_id or 0) == 0:
        out.append("server_id is 0: a server without an id serves no binlog to a client; "
                   + _cnf("server_id=1"))
    server = Server.parse(str(version))
    missing = missing_grants(grants, server)
    if missing:
        out.append(f"{target.user} lacks {', '.join(missing)}: run GRANT "
                   f"{', '.join(missing)} ON *.* TO the user snapkeep connects as")
    return out


def required_grants(server: Server) -> tuple[str, ...]:
    """MariaDB 10.5 split REPLICATION CLIENT into BINLOG MONITOR (SHOW BINARY LOGS)."""
    if server.mariadb and server.version >= (10, 5, 0):
        return ("REPLICATION SLAVE", "BINLOG MONITOR")
    return ("REPLICATION SLAVE", "REPLICATION CLIENT")


def missing_grants(grants: list[str], server: Server) -> list[str]:
    """The required global privileges none of ``SHOW GRANTS``' lines gives."""
    held: set[str] = set()
    for line in grants:
        m = re.match(r"GRANT (.+?) ON \*\.\* TO ", line)
        if m:
            held.update(p.strip().upper() for p in m.group(1).split(","))
    if "ALL PRIVILEGES" in held:
        return []
    # BINLOG MONITOR is what MariaDB 10.5 renamed REPLICATION CLIENT; SUPER allows SHOW
    # BINARY LOGS elsewhere, never the binlog dump itself
    monitor = {"REPLICATION CLIENT", "BINLOG MONITOR"} | (
        set() if server.mariadb and server.version >= (10, 5, 0) else {"SUPER"})
    aliases = {"REPLICATION CLIENT": monitor, "BINLOG MONITOR": monitor}
    return [g for g in required_grants(server) if not (aliases.get(g, {g}) & held)]


def require_binlog(target: MySQLTarget) -> None:
    """ServerSetupError listing every unmet precondition, one per line."""
    problems = binlog_problems(target)
    if problems:
        raise ServerSetupError(f"{target.describe()} cannot be archived for point-in-time "
                               "recovery:\n" + "\n".join(problems))
