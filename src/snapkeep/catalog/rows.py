"""The catalog rows services read and write most: activities, their log lines, snapshots.

Plain dataclasses, not ORM classes: a local ``snapshot:create`` reads and writes them
through ``catalog/sql.py`` with the stdlib ``sqlite3`` and never imports SQLAlchemy
(docs/performance.md, "Unchanged re-snapshot, third pass"). The tables are still declared
in ``models.py``, which the Alembic migrations and the ORM-mapped rest of the catalog use.
Times are timezone-aware UTC once read. A field whose column is NOT NULL and has no
default (``created_at``, ``at``) must be set before the row is inserted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(kw_only=True, eq=False)
class Activity:
    id: str = ""
    project: str = ""  # set by the catalog that adds it: its project's id
    environment: str = ""
    type: str = ""
    state: str = "pending"  # pending | in_progress | complete | cancelled
    result: str | None = None  # success | failure
    description: str = ""
    created_at: datetime = None  # type: ignore[assignment]  # set before inserting
    started_at: datetime | None = None
    completed_at: datetime | None = None
    completion_percent: int = 0
    snapshot_id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None
    error: str | None = None
    worker: str | None = None  # host:pid of who runs it
    lease_expires_at: datetime | None = None
    cancel_requested: bool = False
    actor: str | None = None  # who asked for it
    # what went wrong without failing it (a hook under the "warn" policy, a webhook that
    # was not delivered); None or [] when nothing did
    warnings: list[str] | None = None


@dataclass(kw_only=True, eq=False)
class ActivityLog:
    id: int = 0  # given by the database on insert
    activity_id: str = ""
    at: datetime = None  # type: ignore[assignment]  # set before inserting
    message: str = ""


@dataclass(kw_only=True, eq=False)
class Snapshot:
    """A listing of a snapshot, mirrored from its manifest in the repository (the truth)."""

    id: str = ""
    project: str = ""  # set by the catalog that stores it: its project's id
    environment: str = ""
    created_at: datetime = None  # type: ignore[assignment]  # set before inserting
    expires_at: datetime | None = None
    live: bool = False
    automated: bool = False
    commit_id: str | None = None
    size_bytes: int = 0
    added_bytes: int | None = None  # new bytes it stored
    status: str = "complete"
    # Restore drills (services/snapshots/drill.py): when the last one passed, and how the
    # latest ended (True passed, False failed; None: never drilled, or nothing verifiable).
    verified_at: datetime | None = None
    verified_ok: bool | None = None
    # how its database was moved: "physical" (pages) or "logical" (rows); None: no
    # database, or listed before snapkeep recorded it (docs/physical.md)
    engine: str | None = None
