"""The activity types: each registers once the runner that does its work
(``runners.py`` registers snapkeep's own); ``operations.execute`` runs a claimed activity
through the one its type names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from snapkeep.config import EnvironmentConfig
from snapkeep.errors import UsageError
from snapkeep.services.activities.recorder import ActivityRecorder
from snapkeep.services.context import Context

# The work of one activity, given its parameters: the snapshot ID it made, or None.
Runner = Callable[[Context, EnvironmentConfig, ActivityRecorder, dict[str, Any]], str | None]


@dataclass(frozen=True)
class ActivityType:
    name: str  # as recorded in the catalog, e.g. environment.backup
    run: Runner
    # Whether scratch copies a killed restore drill left are removed first (a drill does
    # that itself, and fails when it cannot).
    cleans_up_drills: bool = True


_TYPES: dict[str, ActivityType] = {}


def register(kind: ActivityType) -> ActivityType:
    """Add an activity type; registering another one under a taken name is a bug."""
    known = _TYPES.setdefault(kind.name, kind)
    if known is not kind:
        raise ValueError(f"activity type {kind.name} is registered twice")
    return kind


def lookup(name: str) -> ActivityType:
    """The registered type called ``name``; UsageError naming the known ones if none is."""
    kind = _TYPES.get(name)
    if kind is None:
        raise UsageError(f"unknown activity type {name!r}; the known types are "
                         f"{', '.join(known_types())}")
    return kind


def known_types() -> list[str]:
    return sorted(_TYPES)
