"""The metadata catalog: environment status, activities and their logs, snapshot listings,
users, roles, tokens, console sessions, schedules and the webhook outbox.

``Activity``, ``ActivityLog`` and ``Snapshot`` are plain rows (``rows.py``); the other row
classes are SQLAlchemy ORM classes (``models.py``), resolved on first use (PEP 562) so
that importing the catalog loads no SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from snapkeep.catalog.catalog import Catalog
from snapkeep.catalog.rows import Activity, ActivityLog, Snapshot
from snapkeep.catalog.times import Clock, SystemClock

if TYPE_CHECKING:
    from snapkeep.catalog.models import (
        ApiToken,
        EnvironmentRole,
        EnvironmentState,
        Notification,
        Schedule,
        User,
        WebSession,
    )

_ORM = {"ApiToken", "EnvironmentRole", "EnvironmentState", "Notification", "Schedule", "User",
        "WebSession"}

__all__ = ["Activity", "ActivityLog", "ApiToken", "Catalog", "Clock", "EnvironmentRole",
           "EnvironmentState", "Notification", "Schedule", "Snapshot", "SystemClock", "User",
           "WebSession"]


def __getattr__(name: str) -> Any:
    if name in _ORM:
        return getattr(importlib.import_module("snapkeep.catalog.models"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
