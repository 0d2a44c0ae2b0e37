"""One catalog, many projects (#19): every per-project row carries its project's id.

Activities, environments, snapshots, schedules, notifications and roles get a
``project`` column; environments, snapshots and environment roles are unique per
project (their primary keys gain it), and a user's project role moves to
``project_roles`` (one row per user and project; ``users.project_role`` is no longer
read). The rows already there belong to the one project the catalog served: the
migration cannot read snapkeep.toml, so the ``Catalog`` that opens the catalog first
hands its config's ``[project] id`` over (``config.attributes["project"]``) and the
migration fills it in. Without one (a tool run outside any project) they are filled
with ``default``.
"""

import sqlalchemy as sa
from alembic import context, op

revision = "0007"
down_revision = "0006"

FALLBACK = "default"


def _project() -> str:
    return str(context.config.attributes.get("project") or FALLBACK)


def _rebuilt(table: str, columns: list[sa.Column], key: list[str], copied: list[str],
             project: str) -> None:
    """``table`` made again with ``columns`` and primary key ``key``, its rows copied with
    ``project`` filled in (a primary key cannot be changed in place on SQLite)."""
    new = f"{table}_new"
    op.create_table(new, *columns, sa.PrimaryKeyConstraint(*key, name=f"pk_{table}"))
    names = ", ".join(copied)
    op.execute(sa.text(f"INSERT INTO {new} (project, {names}) SELECT :p, {names} FROM {table}")
               .bindparams(p=project))
    op.drop_table(table)
    op.rename_table(new, table)


def _project_column() -> sa.Column[str]:
    return sa.Column("project", sa.String(200), nullable=False)


def upgrade() -> None:
    project = _project()
    _rebuilt("environments", [
        _project_column(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="active"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("running_activity", sa.String(40)),
    ], ["project", "name"], ["name", "status", "updated_at", "running_activity"], project)
    snapshot_columns = ["id", "environment", "created_at", "expires_at", "live", "automated",
                        "commit_id", "size_bytes", "added_bytes", "status", "verified_at",
                        "verified_ok", "engine"]
    _rebuilt("snapshots", [
        _project_column(),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("live", sa.Boolean, nullable=False),
        sa.Column("automated", sa.Boolean, nullable=False),
        sa.Column("commit_id", sa.String(64)),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("added_bytes", sa.BigInteger),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True)),
        sa.Column("verified_ok", sa.Boolean),
        sa.Column("engine", sa.String(20)),
    ], ["project", "id"], snapshot_columns, project)
    op.create_index("ix_snapshots_project_environment", "snapshots", ["project", "environment"])
    _rebuilt("environment_roles", [
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        _project_column(),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
    ], ["user_id", "project", "environment"], ["user_id", "environment", "role"], project)
    op.create_table(
        "project_roles",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        _project_column(),
        sa.Column("role", sa.String(20), nullable=False),  # admin | viewer
        sa.PrimaryKeyConstraint("user_id", "project", name="pk_project_roles"),
    )
    op.execute(sa.text("INSERT INTO project_roles (user_id, project, role) SELECT id, :p, "
                       "project_role FROM users WHERE project_role IS NOT NULL")
               .bindparams(p=project))
    # rows keyed by a random id: a column (filled in) and an index to find a project's
    for table, index in (("activities", ["project", "environment", "state"]),
                         ("schedules", ["project", "next_run_at"]),
                         ("notifications", ["project", "state", "next_attempt_at"])):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("project", sa.String(200), nullable=False,
                                       server_default=""))
        op.execute(sa.text(f"UPDATE {table} SET project = :p").bindparams(p=project))
        op.create_index(f"ix_{table}_project", table, index)


def downgrade() -> None:
    raise NotImplementedError("a catalog of several projects cannot be made one project's again")
