"""The team server (#5): users, roles, API tokens, console sessions, schedules, and the
activity queue (leases, cancel requests, one running activity per environment)."""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def _user_id(**options: Any) -> sa.Column[int]:
    """The user a row belongs to: it goes when the user is deleted."""
    return sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                     **options)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200)),
        sa.Column("project_role", sa.String(20)),  # admin | viewer | NULL
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "environment_roles",
        _user_id(primary_key=True),
        sa.Column("environment", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(20), nullable=False),  # admin | contributor | viewer
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(40), primary_key=True),
        _user_id(nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        _user_id(nullable=False, index=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("environment", sa.String(200), nullable=False, index=True),
        sa.Column("cron", sa.String(120), nullable=False),
        sa.Column("live", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("origin", sa.String(20), nullable=False, server_default="user"),  # user | plan
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(320)),
        sa.Column("last_run_at", sa.DateTime(timezone=True)),
        sa.Column("next_run_at", sa.DateTime(timezone=True)),
    )
    with op.batch_alter_table("activities") as batch:
        batch.add_column(sa.Column("worker", sa.String(200)))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("cancel_requested", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("actor", sa.String(320)))
    with op.batch_alter_table("environments") as batch:
        # The activity running on the environment: the catalog-wide "one at a time" guard
        # that workers on several hosts share.
        batch.add_column(sa.Column("running_activity", sa.String(40)))


def downgrade() -> None:
    with op.batch_alter_table("environments") as batch:
        batch.drop_column("running_activity")
    with op.batch_alter_table("activities") as batch:
        for col in ("actor", "cancel_requested", "lease_expires_at", "worker"):
            batch.drop_column(col)
    for table in ("schedules", "web_sessions", "api_tokens", "environment_roles", "users"):
        op.drop_table(table)
