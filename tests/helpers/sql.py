"""Running SQL on a test's PyMySQL connection."""

from __future__ import annotations

from typing import Any


def run(conn: Any, *statements: str) -> None:
    """Execute each statement in turn on ``conn`` (results are not read)."""
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
