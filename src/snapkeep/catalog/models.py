"""Catalog tables (SQLAlchemy 2). The schema itself is owned by the Alembic migrations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class EnvironmentState(Base):
    """What the catalog knows about an environment beyond snapkeep.toml: its status."""

    __tablename__ = "environments"
    project: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | inactive
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The activity running on it: the "one at a time" guard shared by workers on any host.
    running_activity: Mapped[str | None] = mapped_column(String(40))


class Activity(Base):
    __tablename__ = "activities"
    __table_args__ = (Index("ix_activities_project", "project", "environment", "state"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(200), index=True)
    type: Mapped[str] = mapped_column(String(60))
    # pending | in_progress | complete | cancelled
    state: Mapped[str] = mapped_column(String(20), index=True)
    result: Mapped[str | None] = mapped_column(String(20))  # success | failure
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completion_percent: Mapped[int] = mapped_column(Integer, default=0)
    snapshot_id: Mapped[str | None] = mapped_column(String(40))
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    pid: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))  # host:pid of who runs it
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str | None] = mapped_column(String(320))  # who asked for it
    # what went wrong without failing it (a hook under the "warn" policy, a webhook that
    # was not delivered); None or [] when nothing did
    warnings: Mapped[list[str] | None] = mapped_column(JSON)


class ActivityLog(Base):
    __tablename__ = "activity_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    activity_id: Mapped[str] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"),
                                             index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    message: Mapped[str] = mapped_column(Text)


class Snapshot(Base):
    """A listing of a snapshot, mirrored from its manifest in the repository (the truth)."""

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_project_environment", "project", "environment"),)
    project: Mapped[str] = mapped_column(String(200), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    environment: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    live: Mapped[bool] = mapped_column(Boolean)
    automated: Mapped[bool] = mapped_column(Boolean)
    commit_id: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    added_bytes: Mapped[int | None] = mapped_column(BigInteger)  # new bytes it stored
    status: Mapped[str] = mapped_column(String(20))  # complete
    # Restore drills (services/snapshots/drill.py): when the last one passed, and how the
    # latest ended
    # (True passed, False failed; None: never drilled, or nothing in it was verifiable).
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verified_ok: Mapped[bool | None] = mapped_column(Boolean)
    # how its database was moved: "physical" (pages) or "logical" (rows); None: no
    # database, or listed before snapkeep recorded it (docs/physical.md)
    engine: Mapped[str | None] = mapped_column(String(20))


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))  # argon2id
    # Not stored here since 0007 (``project_roles``): the catalog fills it in with the
    # user's role in the project it serves (admin | viewer | None) as it reads the row.
    project_role: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EnvironmentRole(Base):
    __tablename__ = "environment_roles"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    project: Mapped[str] = mapped_column(String(200), primary_key=True)
    environment: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))  # admin | contributor | viewer


class ProjectRole(Base):
    """A user's role in one project (admin | viewer); none: environment roles only."""

    __tablename__ = "project_roles"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    project: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))


class ApiToken(Base):
    """A bearer token; only the SHA-256 of the secret is kept."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebSession(Base):
    """A console sign-in; only the SHA-256 of the cookie value is kept."""

    __tablename__ = "web_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Schedule(Base):
    __tablename__ = "schedules"
    __table_args__ = (Index("ix_schedules_project", "project", "next_run_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project: Mapped[str] = mapped_column(String(200), default="")  # set by the catalog
    environment: Mapped[str] = mapped_column(String(200), index=True)
    cron: Mapped[str] = mapped_column(String(120))
    live: Mapped[bool] = mapped_column(Boolean, default=False)
    origin: Mapped[str] = mapped_column(String(20), default="user")  # user | plan
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(String(320))
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Notification(Base):
    """The webhook outbox: one call per ended activity, retried until delivered or failed.

    ``next_attempt_at`` is also the claim: taking an attempt moves it past the attempt's
    timeout, so one process at a time (on any host) may send it.
    """

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_project", "project", "state", "next_attempt_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project: Mapped[str] = mapped_column(String(200), default="")  # set by the catalog
    # unique: an activity ends once, so it is notified once
    activity_id: Mapped[str] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"),
                                             index=True, unique=True)
    payload: Mapped[dict] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    state: Mapped[str] = mapped_column(String(20), index=True)  # pending | delivered | failed
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
