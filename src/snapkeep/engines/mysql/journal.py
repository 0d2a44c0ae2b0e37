"""The cut-over journal: what a killed swap needs to be finished or undone, kept in the server.

Before the first change to the live database, ``PreparedRestore.swap`` writes one row
``plan`` (the table lists of the RENAME, whether the live database was created, and the
CREATE statements with their session context of the live database's previous views,
triggers, routines and events and of the snapshot's) and one row ``state`` into the
table ``journal`` of its own helper database ``<db>__skjournal_<h>`` (``names.py``), in
one INSERT (one InnoDB transaction, durable at commit). ``state`` then moves
``swapping`` → ``renamed`` → ``complete``, or to ``rolling back``.

The atomic ``RENAME TABLE`` is the commit point; ``cleanup_leftovers`` reads the journal
(see ``restore.py``) and rolls an interrupted cut-over back before that point and
forward after it.
"""

from __future__ import annotations

import json
from typing import Any

from snapkeep.engines.mysql.connect import Connection, database_exists, query, quote_ident

TABLE = "journal"

SWAPPING = "swapping"
RENAMED = "renamed"
COMPLETE = "complete"
ROLLING_BACK = "rolling back"


def _table(db: str) -> str:
    return f"{quote_ident(db)}.{quote_ident(TABLE)}"


def begin(conn: Connection, db: str, plan: dict[str, Any]) -> None:
    """Create the journal database and store ``plan`` with state ``swapping``."""
    query(conn, f"DROP DATABASE IF EXISTS {quote_ident(db)}")
    query(conn, f"CREATE DATABASE {quote_ident(db)} CHARACTER SET utf8mb4 "
                f"COLLATE utf8mb4_bin")
    query(conn, f"CREATE TABLE {_table(db)} (k VARCHAR(32) NOT NULL PRIMARY KEY, "
                f"v LONGBLOB NOT NULL) ENGINE=InnoDB")
    query(conn, f"INSERT INTO {_table(db)} (k, v) VALUES (%s, %s), (%s, %s)",
          ("plan", json.dumps(plan).encode(), "state", SWAPPING.encode()))


def set_state(conn: Connection, db: str, state: str) -> None:
    query(conn, f"UPDATE {_table(db)} SET v = %s WHERE k = 'state'", (state.encode(),))


def read(conn: Connection, db: str) -> tuple[dict[str, Any], str] | None:
    """(plan, state), or None when the journal is absent or was never completely written
    (then nothing in the live database was changed yet)."""
    if not database_exists(conn, db):
        return None
    found = query(conn, "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                        "AND TABLE_NAME = %s", (db, TABLE))
    if not found:
        return None
    rows = dict(query(conn, f"SELECT k, v FROM {_table(db)}"))
    rows = {(k.decode() if isinstance(k, bytes) else k): v for k, v in rows.items()}
    if "plan" not in rows or "state" not in rows:
        return None

    def text(v: Any) -> str:
        return v.decode("utf-8") if isinstance(v, bytes | bytearray) else str(v)

    return json.loads(text(rows["plan"])), text(rows["state"])


def drop(conn: Connection, db: str) -> None:
    query(conn, f"DROP DATABASE IF EXISTS {quote_ident(db)}")
