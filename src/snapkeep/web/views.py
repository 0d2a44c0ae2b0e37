"""What the console pages show, gathered from the services as the signed-in person.

The services decide what that person may see and do; the console asks the same policy
functions only to hide controls the service would refuse anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from snapkeep.config import EnvironmentConfig
from snapkeep.errors import PermissionDenied, PolicyError
from snapkeep.policy import Action, may, require_manual_snapshot_allowed
from snapkeep.services import environments, replicas
from snapkeep.services.activities import listing as activities
from snapkeep.services.activities.info import (
    BACKUP,
    DELETE,
    EXPIRE,
    RESTORE,
    ActivityInfo,
    LogLine,
)
from snapkeep.services.context import Context
from snapkeep.services.environments import EnvironmentInfo
from snapkeep.services.snapshots import drill
from snapkeep.services.snapshots import listing as snapshots
from snapkeep.services.snapshots.listing import SnapshotInfo

ENDED = ("complete", "cancelled")
PAGE_SIZE = 50  # rows per page of the Stored backups and of the activity feed
MAX_PAGE = 100_000  # keeps the offset a number every catalog database takes
T = TypeVar("T")
TYPE_LABELS = {
    BACKUP: "Backup",
    RESTORE: "Restore",
    DELETE: "Delete backup",
    EXPIRE: "Expire backups",
    drill.VERIFY: "Restore drill",
}


def outcome(a: ActivityInfo) -> str:
    """One word for an activity's state: queued, running, success, failure, cancelled."""
    if a.state == "pending":
        return "queued"
    if a.state == "in_progress":
        return "running"
    if a.state == "cancelled":
        return "cancelled"
    return a.result or "unknown"


def type_label(a: ActivityInfo) -> str:
    return TYPE_LABELS.get(a.type, a.type)


@dataclass(frozen=True)
class Page:
    """Which page of a long list is shown (1 is the newest) and whether an older one
    follows; the templates link to ``?page=number±1``."""

    number: int
    has_older: bool


def page_of(number: int, fetch: Callable[[int, int], list[T]]) -> tuple[list[T], Page]:
    """Rows of page ``number`` from ``fetch(limit, offset)``: one row more is asked for,
    to know whether an older page exists without counting them all."""
    number = max(1, number)
    rows = fetch(PAGE_SIZE + 1, (number - 1) * PAGE_SIZE)
    return rows[:PAGE_SIZE], Page(number, has_older=len(rows) > PAGE_SIZE)


@dataclass(frozen=True)
class EnvironmentRow:
    info: EnvironmentInfo
    last_backup: ActivityInfo | None
    readable: bool  # False: the person has no role here, so its backups are not shown


def environment_rows(ctx: Context) -> list[EnvironmentRow]:
    rows = []
    for info in environments.list_environments(ctx):
        try:
            recent = activities.list_activities(ctx, info.name, limit=50)
        except PermissionDenied:
            rows.append(EnvironmentRow(info, None, readable=False))
            continue
        last = next((a for a in recent if a.type == BACKUP), None)
        rows.append(EnvironmentRow(info, last, readable=True))
    return rows


@dataclass(frozen=True)
class BackupsView:
    env: EnvironmentConfig
    info: EnvironmentInfo
    stored: list[SnapshotInfo]
    recent: list[ActivityInfo]
    can_backup: bool
    can_restore: bool
    automatic: str | None  # why manual backups do not apply here (Pro staging/production)
    restore_targets: list[str]  # other environments the actor may restore these into
    can_export: bool  # may download a snapshot's database (SQL) and mounts (tar)
    can_delete: bool
    page: Page  # of ``stored``
    # snapshot ID → the replicas holding it (offsite.md); every stored one is in the primary
    copies: dict[str, list[str]] = field(default_factory=dict)
    replicas: tuple[str, ...] = ()  # the configured ones: a "Stored in" column when any

    @property
    def running(self) -> ActivityInfo | None:
        return next((a for a in self.recent if a.state not in ENDED), None)


def backups_view(ctx: Context, env: EnvironmentConfig, page: int = 1) -> BackupsView:
    # list_snapshots refuses those without a role here
    stored, shown = page_of(page, lambda limit, offset: snapshots.list_snapshots(
        ctx, env, limit=limit, offset=offset))
    try:
        require_manual_snapshot_allowed(ctx.config.plan, env.type, env.name)
        automatic = None
    except PolicyError:
        automatic = (f"This environment is backed up automatically every hour, as every Pro "
                     f"{env.type} environment is: manual backups do not apply to it. The "
                     "automatic backups are listed below, and an Admin can restore any "
                     "restorable one.")
    return BackupsView(
        env=env, info=environments.info(ctx, env, window=True), stored=stored,
        recent=activities.list_activities(ctx, env.name, limit=5),
        can_backup=may(ctx.actor, env.name, Action.SNAPSHOT_CREATE),
        can_restore=may(ctx.actor, env.name, Action.SNAPSHOT_RESTORE),
        automatic=automatic, restore_targets=restore_targets(ctx, env.name),
        can_export=may(ctx.actor, env.name, Action.SNAPSHOT_EXPORT),
        can_delete=may(ctx.actor, env.name, Action.SNAPSHOT_DELETE), page=shown,
        copies=replicas.stored_in(ctx) if ctx.config.replicas else {},
        replicas=tuple(sorted(ctx.config.replicas)))


def restore_targets(ctx: Context, source: str) -> list[str]:
    """The other environments whose Admin this actor is: where a snapshot of ``source``
    may be restored (none unless the actor may let ``source``'s data leave it)."""
    if not may(ctx.actor, source, Action.SNAPSHOT_RESTORE_ELSEWHERE):
        return []
    return [name for name in ctx.config.environments
            if name != source and may(ctx.actor, name, Action.SNAPSHOT_RESTORE)]


def activity_feed(ctx: Context, environment: str | None,
                  page: int = 1) -> tuple[list[ActivityInfo], Page]:
    """A page of the newest activities of one environment, or of every environment the
    person may read (the service refuses the others, and they are left out)."""
    def fetch(limit: int, offset: int) -> list[ActivityInfo]:
        if environment is not None:
            return activities.list_activities(ctx, environment, limit=limit, offset=offset)
        # The first offset+limit of each readable environment hold the page's rows.
        feed: list[ActivityInfo] = []
        for name in ctx.config.environments:
            try:
                feed += activities.list_activities(ctx, name, limit=offset + limit)
            except PermissionDenied:
                continue
        feed.sort(key=lambda a: (a.created_at, a.id), reverse=True)
        return feed[offset:offset + limit]

    return page_of(page, fetch)


def activity_json(a: ActivityInfo, lines: list[LogLine]) -> dict[str, Any]:
    """The activity page's live state: polled by console.js every second."""
    def ts(dt: Any) -> str | None:
        return dt.isoformat(timespec="seconds") if dt else None

    return {
        "id": a.id, "type": a.type, "label": type_label(a), "environment": a.environment,
        "description": a.description, "state": a.state, "result": a.result,
        "outcome": outcome(a), "done": a.state in ENDED,
        "completion_percent": 100 if a.state == "complete" and a.result == "success"
        else int(a.completion_percent or 0),
        "error": a.error, "snapshot_id": a.snapshot_id, "warnings": list(a.warnings or []),
        "created_at": ts(a.created_at), "started_at": ts(a.started_at),
        "completed_at": ts(a.completed_at),
        "log": [{"id": ln.id, "at": ts(ln.at), "message": ln.message} for ln in lines],
    }
