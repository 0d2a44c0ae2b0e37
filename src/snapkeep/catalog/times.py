"""Times in the catalog: always UTC, always timezone-aware once read.

SQLite hands DateTime(timezone=True) columns back naive; ``utc`` makes every such column
of an ORM row aware (``sql.decode`` does it for the plain rows), so callers compare and
print times the same on SQLite and PostgreSQL.

The wall clock is a ``Clock`` handed down (``Context.clock`` → ``Catalog.clock``), not read
from a module: a test gives both one clock it moves. Monotonic timers (timeouts, waits)
are not the wall clock and keep ``time.monotonic``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar, overload

if TYPE_CHECKING:
    from snapkeep.catalog.models import Base

Row = TypeVar("Row", bound="Base")


class Clock(Protocol):
    """The wall clock: now, as a timezone-aware UTC datetime."""

    def __call__(self) -> datetime: ...


class SystemClock:
    """The host's clock (hosts sharing a catalog keep theirs synchronised with NTP)."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)


@overload
def aware(dt: datetime) -> datetime: ...
@overload
def aware(dt: None) -> None: ...
def aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


@overload
def utc(row: Row) -> Row: ...
@overload
def utc(row: None) -> None: ...
def utc(row: Row | None) -> Row | None:
    """``row`` (an ORM row, or None) with every DateTime column timezone-aware (UTC)."""
    from sqlalchemy import DateTime  # only ORM rows come here: SQLAlchemy is loaded

    if row is not None:
        for column in row.__table__.columns:
            if isinstance(column.type, DateTime):
                setattr(row, column.key, aware(getattr(row, column.key)))
    return row
