"""Times in the catalog: always UTC, always timezone-aware once read.

SQLite hands DateTime(timezone=True) columns back naive; ``utc`` makes every such column
of a row aware, so callers compare and print times the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import DateTime

from snapkeep.catalog.models import Base

Row = TypeVar("Row", bound=Base)


def now() -> datetime:
    return datetime.now(UTC)


def aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


def utc(row: Row | None) -> Row | None:
    """``row`` (or None) with every DateTime column timezone-aware (UTC)."""
    if row is not None:
        for column in row.__table__.columns:
            if isinstance(column.type, DateTime):
                setattr(row, column.key, aware(getattr(row, column.key)))
    return row
