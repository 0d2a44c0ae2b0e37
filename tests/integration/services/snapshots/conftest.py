"""Fixtures of the snapshot services' tests."""

from __future__ import annotations

import pytest

from tests.helpers.shop import fill


@pytest.fixture
def shop(mariadb, fresh_db):
    """A fresh database on the session server holding the sample shop (200 products,
    100 orders); its name."""
    conn = mariadb.connect(fresh_db)
    try:
        fill(conn, products=200, orders=100)
        conn.commit()
    finally:
        conn.close()
    return fresh_db
