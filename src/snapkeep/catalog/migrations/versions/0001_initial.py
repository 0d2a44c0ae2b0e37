"""The first catalog: environments, activities with their log, snapshots."""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False, server_default="active"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "activities",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("environment", sa.String(200), nullable=False, index=True),
        sa.Column("type", sa.String(60), nullable=False),
        sa.Column("state", sa.String(20), nullable=False, index=True),
        sa.Column("result", sa.String(20)),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("completion_percent", sa.Integer, nullable=False, server_default="0"),
        sa.Column("snapshot_id", sa.String(40)),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("pid", sa.Integer),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "activity_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("activity_id", sa.String(40),
                  sa.ForeignKey("activities.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_table(
        "snapshots",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("environment", sa.String(200), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("live", sa.Boolean, nullable=False),
        sa.Column("automated", sa.Boolean, nullable=False),
        sa.Column("commit_id", sa.String(64)),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
    )


def downgrade() -> None:
    for table in ("snapshots", "activity_log", "activities", "environments"):
        op.drop_table(table)
