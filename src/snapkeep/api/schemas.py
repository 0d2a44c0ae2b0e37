"""What the API reads and answers, as pydantic models (they make the OpenAPI document).

Field names follow the CLI's JSON output (``snapshot:list --format json``,
``activity:list --format json``), so a script can switch between the two.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from snapkeep.services.activities.info import ActivityInfo
from snapkeep.services.snapshots.listing import SnapshotInfo


def project_path(project: str) -> str:
    return f"/api/projects/{project}"


# -- requests ----------------------------------------------------------------------------------

class BackupRequest(BaseModel):
    """``POST …/backups``. ``safe: false`` takes a live backup (no pause)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"safe": True}]})

    safe: StrictBool = Field(default=True,
                             description="true: pause the environment for a consistent "
                             "backup (the default); false: a live backup, the app keeps serving")
    threads: int | None = Field(default=None, ge=1, le=64,
                                description="database connections dumping in parallel")


class RestoreRequest(BaseModel):
    """``POST …/backups/{id}/restore`` (the body is optional)."""

    model_config = ConfigDict(extra="forbid")

    threads: int | None = Field(default=None, ge=1, le=64, description="tables loaded in parallel")
    target: str | None = Field(default=None, description="restore into this environment instead "
                               "(data only; needs Admin there)")
    only: Literal["database", "mounts"] | None = Field(
        default=None, description="restore only the database, or only the mounts")
    mounts: list[str] | None = Field(default=None, description="restore only these mounts")
    tables: list[str] | None = Field(default=None, description="restore only these tables of the "
                                     "database (with their triggers)")
    at: str | None = Field(default=None, description="the database as of this time (ISO 8601) "
                           "or up to this GTID, replaying the archived binlog onto the backup "
                           "(`auto` as the backup id: the latest one before it)")


class VerifyRequest(BaseModel):
    """``POST …/backups/{id}/verify``: a restore drill (the body is optional)."""

    model_config = ConfigDict(extra="forbid")

    threads: int | None = Field(default=None, ge=1, le=64, description="tables loaded in parallel")


# -- answers -----------------------------------------------------------------------------------

def _fields(info: Any, model: type[BaseModel]) -> dict[str, Any]:
    """The fields of the service's dataclass ``info`` that ``model`` answers with."""
    return {f.name: getattr(info, f.name) for f in dataclasses.fields(info)
            if f.name in model.model_fields}


class ErrorDetail(BaseModel):
    status: int
    type: str = Field(description="the snapkeep error class, e.g. BusyError, PermissionDenied")
    message: str = Field(description="what was wrong and what to do")


class ErrorOut(BaseModel):
    error: ErrorDetail


class ActivityOut(BaseModel):
    id: str
    type: str = Field(description="environment.backup | environment.restore | "
                      "environment.backup.delete | environment.backup.expire | "
                      "environment.backup.export | environment.backup.import | "
                      "environment.backup.verify")
    state: str = Field(description="pending | in_progress | complete | cancelled")
    result: str | None = Field(description="success | failure, once complete")
    completion_percent: int
    environment: str
    description: str
    actor: str | None = Field(default=None, description="who asked for it")
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    snapshot_id: str | None
    error: str | None
    warnings: list[str] = Field(default_factory=list,
                                description="what went wrong without failing it (a hook "
                                "under the warn policy, an undelivered webhook)")
    links: dict[str, str]

    @classmethod
    def of(cls, a: ActivityInfo, project: str) -> ActivityOut:
        base = f"{project_path(project)}/activities/{a.id}"
        env = f"{project_path(project)}/environments/{a.environment}"
        return cls(**_fields(a, cls), links={"self": base, "log": f"{base}/log",
                                             "cancel": f"{base}/cancel", "environment": env})


class SnapshotOut(BaseModel):
    """A backup: the fields of ``SnapshotInfo`` (services/snapshots/listing.py), and links."""

    id: str = Field(description="the backup's ID")
    environment: str = Field(description="the environment it is a backup of")
    created_at: datetime = Field(description="when it was taken")
    expires_at: datetime | None = Field(description="when the restore window lets go of it; "
                                        "null: kept until deleted")
    restorable: bool = Field(description="whether it may be restored now")
    live: bool = Field(description="taken while the application kept serving (no pause)")
    automated: bool = Field(description="taken by a schedule, not asked for by someone")
    commit_id: str | None = Field(description="the git commit of the environment's code then")
    size_bytes: int = Field(description="the bytes of data it holds")
    added_bytes: int | None = Field(description="new bytes this snapshot stored")
    status: str
    verified_at: datetime | None = Field(default=None, description="when the last restore drill of "
                                         "it passed (`snapshot:verify --restore`); null until "
                                         "one did")
    verified_ok: bool | None = Field(default=None, description="the latest restore drill's "
                                     "outcome; null: never drilled, or not verifiable (taken "
                                     "before digests)")
    engine: str | None = Field(default=None, description="how its database was moved: "
                               "physical (InnoDB pages) or logical (rows); null: no database")
    links: dict[str, str]

    @classmethod
    def of(cls, s: SnapshotInfo, project: str) -> SnapshotOut:
        base = f"{project_path(project)}/environments/{s.environment}/backups/{s.id}"
        return cls(**_fields(s, cls), links={"self": base, "restore": f"{base}/restore",
                                             "verify": f"{base}/verify"})


class SnapshotDetailOut(SnapshotOut):
    """One backup, with what restoring it would do."""

    mounts: list[str] = Field(description="the mounts it holds (replaced by a restore)")
    database: bool = Field(description="whether it holds a database (replaced by a restore)")
    code_note: str | None = Field(description="set when the environment's code is at another "
                                  "commit than the snapshot's (a restore never changes code)")


class RecoverableWindowOut(BaseModel):
    """A point-in-time environment's recoverable window (docs/pitr.md)."""

    summary: str = Field(description="recoverable from … to … (lag N s), or why not")
    start: str | None = Field(description="the earliest time a restore --at reaches (UTC)")
    end: str | None = Field(description="the last archived event's time (UTC)")
    lag_seconds: float | None = Field(
        description="0 when every event the server wrote is archived, else how old the "
                    "newest archived event is")
    server_checked: bool = Field(description="the lag was measured against the server")
    last_archived_at: str | None
    archived: bool
    gaps: list[dict[str, Any]]
    ranges: list[list[str | None]]
    bases: list[dict[str, Any]]


class EnvironmentOut(BaseModel):
    name: str
    type: str = Field(description="production | staging | development")
    status: str = Field(description="active | inactive")
    mounts: list[str]
    running_activity: str | None = Field(description="the activity holding it, if any")
    last_backup: SnapshotOut | None
    links: dict[str, str]
    point_in_time: bool = False
    recoverable: RecoverableWindowOut | None = Field(
        default=None, description="with point_in_time: the recoverable window")
    blocked: str | None = Field(
        default=None, description="why it is held by an activity whose worker is gone: "
        "what that worker left (a pause, a cut-over) waits for a worker to settle it")


class ApiInfoOut(BaseModel):
    """``GET /api``: which project this server serves, and who the token belongs to."""

    project: str
    version: str
    actor: dict[str, Any]
    links: dict[str, str]


class ProjectOut(BaseModel):
    """``GET /api/projects``: a served project the token's user has a role in, and the
    roles they have there."""

    id: str
    plan: str
    project_role: str | None
    environment_roles: dict[str, str]
    links: dict[str, str]
