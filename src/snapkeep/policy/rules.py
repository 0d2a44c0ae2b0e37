from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from snapkeep.errors import PermissionDenied, PolicyError, UsageError


class Action(StrEnum):
    SNAPSHOT_CREATE = "create a snapshot"
    SNAPSHOT_RESTORE = "restore a snapshot"
    SNAPSHOT_DELETE = "delete a snapshot"
    SNAPSHOT_READ = "list snapshots"
    ACTIVITY_READ = "read activities"
    ACTIVITY_CANCEL = "cancel an activity"
    ENVIRONMENT_MANAGE = "change the environment's status"
    SNAPSHOT_EXPORT = "export a snapshot"
    SNAPSHOT_IMPORT = "import a snapshot"
    SNAPSHOT_VERIFY = "run a restore drill of a snapshot"
    # On the source environment of a restore into another one: its data leaves it.
    SNAPSHOT_RESTORE_ELSEWHERE = "restore its snapshots into another environment"


# The role on an environment that lets its data leave it: download (export) a snapshot,
# or restore one into another environment (whose Admin can then export that). One value,
# so the two ways out cannot drift apart.
DATA_LEAVES = "admin"


# Environment role needed for each action (project admins may do everything).
_NEEDS = {
    Action.SNAPSHOT_CREATE: "admin",
    Action.SNAPSHOT_RESTORE: "admin",
    Action.SNAPSHOT_DELETE: "admin",
    Action.ENVIRONMENT_MANAGE: "admin",
    Action.ACTIVITY_CANCEL: "admin",
    Action.SNAPSHOT_READ: "viewer",
    Action.ACTIVITY_READ: "viewer",
    Action.SNAPSHOT_EXPORT: DATA_LEAVES,
    Action.SNAPSHOT_RESTORE_ELSEWHERE: DATA_LEAVES,
    Action.SNAPSHOT_IMPORT: "admin",  # like a backup: a new snapshot of the environment
    # like an export: the whole of the data is written out (a scratch database on the
    # environment's server, files on its host), and it occupies the environment
    Action.SNAPSHOT_VERIFY: "admin",
}
_RANK = {"viewer": 1, "contributor": 2, "admin": 3}


@dataclass(frozen=True)
class Actor:
    """Who asks. ``project_role`` is admin | viewer | None; ``environment_roles`` maps
    environment name to admin | contributor | viewer."""

    name: str
    project_role: str | None = None
    environment_roles: dict[str, str] = field(default_factory=dict)
    email: str | None = None  # the signed-in user's; None for the local operator

    def role_on(self, environment: str) -> str | None:
        if self.project_role == "admin":
            return "admin"
        role = self.environment_roles.get(environment)
        if role is None and self.project_role == "viewer":
            return "viewer"
        return role


PROJECT_ROLES = ("admin", "viewer")
ENVIRONMENT_ROLES = ("admin", "contributor", "viewer")


def check_project_role(role: str | None) -> str | None:
    """``role`` lowercased if it is a project role; ``none``/None mean no project role."""
    value = (role or "none").strip().lower()
    if value == "none":
        return None
    if value not in PROJECT_ROLES:
        raise UsageError(f"unknown project role {role!r}; choose admin, viewer or none")
    return value


def check_environment_role(role: str | None) -> str | None:
    """``role`` lowercased if it is an environment role; ``none``/None mean remove it."""
    value = (role or "none").strip().lower()
    if value == "none":
        return None
    if value not in ENVIRONMENT_ROLES:
        raise UsageError(f"unknown environment role {role!r}; "
                         "choose admin, contributor, viewer or none")
    return value


def require_project_admin(actor: Actor, doing: str) -> None:
    """Only project admins manage users and other people's tokens."""
    if actor.project_role != "admin":
        raise PermissionDenied(f"{actor.name} is not a project admin; you need the project "
                               f"Admin role to {doing}. Ask a project admin to do it.")


def local_operator(name: str = "local operator") -> Actor:
    """In local mode the person at the shell owns the project: project admin."""
    return Actor(name=name, project_role="admin")


def require_role(actor: Actor, environment: str, action: Action) -> None:
    if not may(actor, environment, action):
        needed = _NEEDS[action]
        role = actor.role_on(environment)
        have = f"the {role} role" if role else "no role"
        raise PermissionDenied(
            f"{actor.name} has {have} on environment {environment}; you need the "
            f"{needed.capitalize()} role to {action.value}. Ask a project admin to grant it.")


def may(actor: Actor, environment: str, action: Action) -> bool:
    """Whether ``require_role`` would let ``actor`` do ``action`` on ``environment``."""
    needed = _NEEDS[action]
    role = actor.role_on(environment)
    return role is not None and _RANK[role] >= _RANK[needed]


def require_active(environment: str, status: str) -> None:
    if status != "active":
        raise PolicyError(
            f"environment {environment} is {status}; snapshots can be taken and restored only "
            "on active environments. Activate it with "
            f"`snapkeep environment:activate -e {environment}`.")


def require_manual_snapshot_allowed(plan: str, env_type: str, environment: str) -> None:
    """Pro Staging and Production get automatic backups; manual snapshots do not apply."""
    if plan == "pro" and env_type in ("staging", "production"):
        raise PolicyError(
            f"environment {environment} is a Pro {env_type} environment: it receives automatic "
            "backups for disaster recovery, and manual snapshots do not apply to it. Use the "
            "scheduled backups, or snapshot an integration (development) environment.")


def expires_at(created: datetime, window_days: int) -> datetime:
    return created + timedelta(days=window_days)


def is_restorable(status: str, expires: datetime | None, now: datetime) -> bool:
    return status == "complete" and (expires is None or now < expires)


def require_restorable(snapshot_id: str, status: str, expires: datetime | None,
                       now: datetime) -> None:
    if status != "complete":
        raise PolicyError(f"snapshot {snapshot_id} is {status} and cannot be restored")
    if expires is not None and now >= expires:
        raise PolicyError(
            f"snapshot {snapshot_id} expired on {expires.isoformat(timespec='seconds')} "
            "(the restore window has passed) and can no longer be restored; "
            "pick a newer one from `snapkeep snapshot:list`.")
