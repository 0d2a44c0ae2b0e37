"""The metadata catalog: environment status, activities and their logs, snapshot listings,
users, roles, tokens, console sessions, schedules and the webhook outbox."""

from snapkeep.catalog.catalog import Catalog
from snapkeep.catalog.models import (
    Activity,
    ActivityLog,
    ApiToken,
    EnvironmentRole,
    EnvironmentState,
    Notification,
    Schedule,
    Snapshot,
    User,
    WebSession,
)
from snapkeep.catalog.times import Clock, SystemClock

__all__ = ["Activity", "ActivityLog", "ApiToken", "Catalog", "Clock", "EnvironmentRole",
           "EnvironmentState", "Notification", "Schedule", "Snapshot", "SystemClock", "User",
           "WebSession"]
