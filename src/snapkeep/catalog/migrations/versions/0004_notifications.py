"""Hooks and notifications (#6): warnings on activities, and the webhook outbox."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("activities") as batch:
        batch.add_column(sa.Column("warnings", sa.JSON, nullable=True))
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("activity_id", sa.String(40),
                  sa.ForeignKey("activities.id", ondelete="CASCADE"), nullable=False,
                  index=True, unique=True),  # an activity ends, and is notified, once
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("state", sa.String(20), nullable=False, index=True),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    op.drop_table("notifications")
    with op.batch_alter_table("activities") as batch:
        batch.drop_column("warnings")
