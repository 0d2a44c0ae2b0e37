"""An older SQLite catalog on disk, for the tests of the migrations that open it."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from snapkeep.catalog.catalog import MIGRATIONS

# a complete snapshot row as every revision from 0001 on can hold it
OLD_SNAPSHOT_ROW = (
    "INSERT INTO snapshots (id, environment, created_at, live, automated, size_bytes, "
    "status) VALUES ('s1', 'dev', '2026-11-26 10:00:00', 0, 0, 5, 'complete')")


def catalog_at_revision(directory: Path, revision: str, *statements: str) -> None:
    """The catalog file in ``directory`` as the migrations up to ``revision`` left it, with
    ``statements`` run on it; ``Catalog.at(directory)`` then migrates it on opening."""
    url_at_revision(f"sqlite:///{directory / 'catalog.db'}", revision, *statements)


def url_at_revision(url: str, revision: str, *statements: str) -> None:
    """The catalog at SQLAlchemy ``url`` (SQLite or PostgreSQL) as the migrations up to
    ``revision`` left it, with ``statements`` run on it."""
    from snapkeep.catalog.catalog import sqlalchemy_url

    engine = sa.create_engine(sqlalchemy_url(url))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()
