"""A fresh PostgreSQL database per test, on the server at 127.0.0.1:5432 (user postgres,
trust), dropped afterwards. Import the fixture into a test module to use it."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest

SERVER = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:5432/<new database>``."""
    name = f"snapkeep_t_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.skip(f"no PostgreSQL server at {SERVER}: {e}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{SERVER}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request, tmp_path) -> Iterator[str]:
    """A catalog URL for each supported database: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def cat(catalog_url: str):
    """A Catalog on ``catalog_url`` (migrated on open), disposed afterwards."""
    from snapkeep.catalog import Catalog

    c = Catalog.from_url(catalog_url)
    yield c
    c.engine.dispose()
