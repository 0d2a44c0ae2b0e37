"""Fixtures of the MySQL engine's tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def server_conn(mariadb) -> Iterator[Any]:
    """A connection to the session server, with no database selected."""
    conn = mariadb.connect()
    try:
        yield conn
    finally:
        conn.close()
