"""Whether the physical mover can run beside an environment's server (docs/physical.md).

Pages can be read and placed only when the server's data directory is this machine's.
``locate`` decides it from what the server says and what this process can see:

1. the target is reached over a unix socket or a loopback address (a TCP host elsewhere
   is another machine, whatever its data directory is called);
2. the server's ``@@datadir`` exists here, and this process may read, write and enter it
   (pages are read from a backup of it and placed into it);
3. the database's own directory is there (the server's files really are these: a
   loopback port forwarded to a container would name a directory this host lacks);
4. ``mariadb-backup`` (or ``mariabackup``) is installed;
5. the user holds what mariadb-backup needs (RELOAD, PROCESS, BINLOG MONITOR, LOCK TABLES):
   without them a default ``auto`` would pick pages and then fail.

The first condition not met is named in one line; ``choose`` turns it into a refusal
for ``engine = "physical"`` and into a logged fallback for ``"auto"``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snapkeep.engines.mysql.connect import Connection, connect, errors_as, query_text
from snapkeep.engines.mysql.descriptions import physical_tables
from snapkeep.engines.mysql.privileges import session_grants
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.errors import UsageError
from snapkeep.progress import Reporter

LOOPBACK = frozenset(["localhost", "127.0.0.1", "::1"])
TOOLS = ("mariadb-backup", "mariabackup")
PHYSICAL, LOGICAL, AUTO = "physical", "logical", "auto"


@dataclass(frozen=True)
class Locality:
    """What ``locate`` found: the data directory and page size, or what is missing."""

    datadir: Path | None
    page_size: int
    tool: str | None
    missing: str | None  # None: the physical mover can run

    @property
    def usable(self) -> bool:
        return self.missing is None


def find_tool() -> str | None:
    for name in TOOLS:
        path = shutil.which(name)
        if path:
            return path
    return None


def locate(target: MySQLTarget, *, need_tool: bool = True) -> Locality:
    """Whether the server of ``target`` is local and its data directory ours to use
    (``need_tool``: and mariadb-backup installed, which only a snapshot needs)."""
    where = target.describe()
    if not target.unix_socket and target.host not in LOOPBACK:
        return Locality(None, 0, None, f"the server of {where} is not on this machine "
                                       "(neither a unix socket nor a loopback address)")
    conn = connect(target, database=None, doing="locating the data directory")
    try:
        with errors_as(target, "locating the data directory"):
            datadir, page_size = query_text(
                conn, "SELECT @@datadir, @@innodb_page_size")[0]
            exists = bool(query_text(conn, "SELECT 1 FROM information_schema.SCHEMATA "
                                           "WHERE SCHEMA_NAME = %s", (target.database,)))
            lacking = _lacking_grants(conn, target.database) if need_tool else []
    finally:
        conn.close()
    data = Path(str(datadir))
    tool = find_tool()
    try:
        here = data.is_dir()
    except PermissionError:  # a directory above it may not be searched by this user
        here = True
    if not here:
        return Locality(None, 0, tool, f"the data directory {data} of {where} is not on "
                                       "this machine")
    if not os.access(data, os.R_OK | os.W_OK | os.X_OK):
        return Locality(None, 0, tool, f"this process (uid {os.getuid()}) may not read and "
                                       f"write the data directory {data} of {where}")
    # the server's files are these: its database's directory (or, for a restore of a
    # dropped database, its system database's) is here
    db_dir = data / (db_file_name(target.database) if exists else "mysql")
    if not db_dir.is_dir():
        return Locality(None, 0, tool, f"the data directory {data} of {where} has no "
                                       f"directory for database {target.database} here (is "
                                       "the server in another container?)")
    if not os.access(db_dir, os.R_OK | os.W_OK | os.X_OK):
        return Locality(None, 0, tool, f"this process (uid {os.getuid()}) may not read and "
                                       f"write {db_dir}")
    if tool is None and need_tool:
        return Locality(data, int(page_size), None,
                        "mariadb-backup is not installed (apt-get install mariadb-backup)")
    if lacking:
        return Locality(data, int(page_size), tool,
                        f"the user {target.user} lacks what mariadb-backup needs: "
                        f"{', '.join(lacking)} (GRANT {', '.join(lacking)} ON *.* TO it)")
    return Locality(data, int(page_size), tool, None)


def _lacking_grants(conn: Connection, database: str) -> list[str]:
    """The privileges mariadb-backup needs that the session lacks (its grants and its
    enabled roles'): RELOAD, PROCESS, BINLOG MONITOR (REPLICATION CLIENT before 10.5)
    globally, LOCK TABLES on the database."""
    grants = session_grants(conn)
    out = [p for p in ("RELOAD", "PROCESS") if not grants.holds(p, None)]
    if not grants.holds("LOCK TABLES", database):
        out.append("LOCK TABLES")
    if not (grants.holds("BINLOG MONITOR", None) or grants.holds("REPLICATION CLIENT", None)):
        out.append("BINLOG MONITOR")
    return out


def db_file_name(name: str) -> str:
    """The server's file name of a database or table (its ``filename`` charset): ASCII
    letters, digits and ``_`` as they are, every other character ``@xxxx`` (its code
    point in hex; the server's table maps some to shorter codes, which is why the
    tables' own file names are read from ``INNODB_SYS_TABLES`` where it matters)."""
    out = []
    for ch in name:
        if ch.isascii() and (ch.isalnum() or ch == "_"):
            out.append(ch)
        else:
            out.append(f"@{ord(ch):04x}")
    return "".join(out)


def choose(setting: str, target: MySQLTarget, reporter: Reporter) -> Locality | None:
    """The physical mover's locality when ``setting`` picks it, None for the logical one.

    ``physical`` refuses in one line naming what is missing; ``auto`` falls back to the
    logical mover and says why in the activity log."""
    if setting == LOGICAL:
        return None
    found = locate(target)
    if found.usable:
        reporter.log(f"engine {setting}: physical (InnoDB tables as pages; "
                     f"data directory {found.datadir})")
        return found
    if setting == PHYSICAL:
        raise UsageError(f'engine = "physical" cannot be used: {found.missing}; set engine '
                         '= "auto" or "logical", or run snapkeep on the database server')
    reporter.log(f"engine auto: logical, because {found.missing}")
    return None


def for_restore(target: MySQLTarget, description: dict[str, Any],
                reporter: Reporter) -> Locality | None:
    """Where a restore of ``description`` places its tables stored as pages; None when it
    has none, or when ``target``'s server is not ours to write — then the restore turns
    the pages into rows first (``physical_rows.py``) and says why."""
    paged = physical_tables(description)
    if not paged:
        return None
    found = locate(target, need_tool=False)
    if found.missing is not None:
        reporter.log(f"the snapshot was taken physically; its {len(paged)} InnoDB tables "
                     f"stored as pages are restored as rows, because {found.missing}")
        return None
    reporter.log(f"restoring {len(paged)} InnoDB tables as pages (the data directory "
                 f"{found.datadir} is on this machine)")
    return found
