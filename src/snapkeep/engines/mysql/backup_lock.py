"""The lightest lock that gives several connections one point in time, per server flavour.

A parallel dump needs every worker's ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` to
see the same committed state, so commits must be blocked while the workers start theirs:

- MariaDB >= 10.4.1: ``BACKUP STAGE START`` + ``BACKUP STAGE BLOCK_COMMIT`` (blocks
  commits, also of MyISAM/Aria statements; reads go on; no table flush, so it does not
  wait for long-running SELECTs), released with ``BACKUP STAGE END``.
- MySQL >= 8.0: ``LOCK INSTANCE FOR BACKUP`` only blocks DDL, not commits, so it alone
  cannot align several snapshots; the plan is ``LOCK INSTANCE FOR BACKUP`` (no DDL while
  the snapshots start) + ``FLUSH TABLES WITH READ LOCK`` (the commit barrier), released
  with ``UNLOCK TABLES`` + ``UNLOCK INSTANCE``. MySQL 8 code paths are unit-tested on
  the SQL only: MariaDB is the only server in this project's test environment.
- Anything else (MySQL 5.x, MariaDB < 10.4): ``FLUSH TABLES WITH READ LOCK``.

All of them need the RELOAD privilege (MySQL 8's instance lock: BACKUP_ADMIN); without
it the dump falls back to one connection, which is consistent on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# How long the lock statement may wait for conflicting locks before the dump gives up.
LOCK_WAIT_SECONDS = 60


@dataclass(frozen=True)
class Server:
    """Flavour and version of a server, from ``SELECT VERSION()``."""

    mariadb: bool
    version: tuple[int, int, int]

    @classmethod
    def parse(cls, version: str) -> Server:
        m = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
        numbers = (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (0, 0, 0)
        # "5.5.5-10.x-MariaDB" is how old clients were shown MariaDB 10+; skip the prefix.
        if "mariadb" in version.lower():
            m10 = re.search(r"(\d+)\.(\d+)\.(\d+)-MariaDB", version, re.IGNORECASE)
            if m10:
                numbers = (int(m10.group(1)), int(m10.group(2)), int(m10.group(3)))
            return cls(True, numbers)
        return cls(False, numbers)

    @property
    def mysql8(self) -> bool:
        return not self.mariadb and self.version >= (8, 0, 0)


@dataclass(frozen=True)
class LockPlan:
    name: str
    acquire: tuple[str, ...]
    release: tuple[str, ...]


BACKUP_STAGE = LockPlan("BACKUP STAGE BLOCK_COMMIT",
                        ("BACKUP STAGE START", "BACKUP STAGE BLOCK_COMMIT"),
                        ("BACKUP STAGE END",))
MYSQL8_INSTANCE = LockPlan("LOCK INSTANCE FOR BACKUP + FLUSH TABLES WITH READ LOCK",
                           ("LOCK INSTANCE FOR BACKUP", "FLUSH TABLES WITH READ LOCK"),
                           ("UNLOCK TABLES", "UNLOCK INSTANCE"))
GLOBAL_READ_LOCK = LockPlan("FLUSH TABLES WITH READ LOCK", ("FLUSH TABLES WITH READ LOCK",),
                            ("UNLOCK TABLES",))


def plan_for(server: Server) -> LockPlan:
    if server.mariadb and server.version >= (10, 4, 1):
        return BACKUP_STAGE
    if server.mysql8:
        return MYSQL8_INSTANCE
    return GLOBAL_READ_LOCK


# Bound the lock statements' wait (a long DDL would otherwise stall the dump forever).
LOCK_SESSION = f"SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS}"
