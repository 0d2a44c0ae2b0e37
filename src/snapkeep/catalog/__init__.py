"""The metadata catalog: environment status, activities and their logs, snapshot listings."""

from snapkeep.catalog.catalog import Catalog
from snapkeep.catalog.models import Activity, ActivityLog, EnvironmentState, Snapshot

__all__ = ["Activity", "ActivityLog", "Catalog", "EnvironmentState", "Snapshot"]
