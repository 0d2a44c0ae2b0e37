"""What services hand front ends about activities: plain frozen dataclasses, never catalog
rows (the CLI, the API, the console and workers see no SQLAlchemy object).

Also the names of the activity types this package starts itself, and which states count
as running.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from snapkeep.catalog import Activity, ActivityLog

BACKUP = "environment.backup"
RESTORE = "environment.restore"
DELETE = "environment.backup.delete"
EXPIRE = "environment.backup.expire"
RUNNING = ("pending", "in_progress")
MAX_LINE_ID = 2**63 - 1  # log line ids are 64-bit integers in the catalog: no later one


@dataclass(frozen=True)
class ActivityInfo:
    """An activity as it was when read: its state, outcome and what it recorded."""

    id: str
    environment: str
    type: str
    state: str  # pending | in_progress | complete | cancelled
    result: str | None  # success | failure, once complete
    description: str
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    completion_percent: int = 0
    snapshot_id: str | None = None
    error: str | None = None
    actor: str | None = None  # who asked for it
    # what went wrong without failing it (a hook under the "warn" policy, a webhook)
    warnings: tuple[str, ...] = ()
    cancel_requested: bool = False
    worker: str | None = None  # WID:pid:n of who runs (or ran) it (lease.worker_id)
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, a: Activity) -> ActivityInfo:
        return cls(id=a.id, environment=a.environment, type=a.type, state=a.state,
                   result=a.result, description=a.description, created_at=a.created_at,
                   started_at=a.started_at, completed_at=a.completed_at,
                   completion_percent=a.completion_percent or 0, snapshot_id=a.snapshot_id,
                   error=a.error, actor=a.actor, warnings=tuple(a.warnings or ()),
                   cancel_requested=bool(a.cancel_requested), worker=a.worker,
                   parameters=dict(a.parameters or {}))


@dataclass(frozen=True)
class LogLine:
    """One line of an activity's log; ``id`` grows with each line."""

    id: int
    at: datetime
    message: str

    @classmethod
    def of(cls, line: ActivityLog) -> LogLine:
        return cls(line.id, line.at, line.message)
