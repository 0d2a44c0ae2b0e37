"""Clocks for tests: handed to ``Context(clock=…)`` (and ``Catalog(clock=…)``), so services
and the catalog read the test's time instead of the host's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest


class ManualClock:
    """Stands still at ``t`` until the test moves it (``t = …`` or ``advance``)."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, delta: timedelta) -> datetime:
        self.t += delta
        return self.t


T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    """A clock standing at ``T0`` for the test's Catalog and Context to share."""
    return ManualClock(T0)
