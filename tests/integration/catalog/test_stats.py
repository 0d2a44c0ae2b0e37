"""The catalog's aggregates behind ``GET /metrics``, the same on SQLite and PostgreSQL:
snapshot totals, activity counts, run times and last successes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapkeep.catalog import Activity, Catalog, Snapshot
from snapkeep.ids import new_id

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def cat(request, tmp_path: Path) -> Iterator[Catalog]:
    url = f"sqlite:///{tmp_path / 'catalog.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("postgres_url")
    c = Catalog.from_url(url)
    yield c
    c.engine.dispose()


def activity(cat: Catalog, env: str, type_: str, state: str, result: str | None,
             ran: float | None, ended: datetime | None) -> None:
    started = ended - timedelta(seconds=ran) if ended and ran is not None else None
    cat.add_activity(Activity(id=new_id(), environment=env, type=type_, state=state,
                              result=result, description="d", created_at=T0,
                              started_at=started, completed_at=ended, completion_percent=0,
                              parameters={}))


def test_the_aggregates_count_what_the_rows_hold(cat):
    for i, (env, size, added) in enumerate([("dev", 100, 60), ("dev", 50, None),
                                            ("prod", 7, 7)]):
        cat.put_snapshot(Snapshot(id=f"s{i}", environment=env, created_at=T0, expires_at=None,
                                  live=False, automated=False, commit_id=None,
                                  size_bytes=size, added_bytes=added, status="complete"))
    b, r = "environment.backup", "environment.restore"
    activity(cat, "dev", b, "complete", "success", 2.5, T0 + timedelta(minutes=1))
    activity(cat, "dev", b, "complete", "success", 1.25, T0 + timedelta(minutes=5))
    activity(cat, "dev", b, "complete", "failure", 0.5, T0 + timedelta(minutes=9))
    activity(cat, "dev", b, "cancelled", "failure", None, T0 + timedelta(minutes=10))
    activity(cat, "dev", r, "in_progress", None, None, None)
    activity(cat, "prod", r, "complete", "success", 10.0, T0 + timedelta(hours=1))

    assert sorted(cat.snapshot_totals()) == [("dev", 2, 150, 60), ("prod", 1, 7, 7)]
    assert sorted(cat.activity_counts(), key=str) == sorted([
        ("dev", b, "complete", "success", 2), ("dev", b, "complete", "failure", 1),
        ("dev", b, "cancelled", "failure", 1), ("dev", r, "in_progress", None, 1),
        ("prod", r, "complete", "success", 1)], key=str)
    durations = {(e, t): (n, s) for e, t, n, s in cat.activity_durations()}
    assert set(durations) == {("dev", b), ("prod", r)}  # never started: not timed
    assert durations["dev", b][0] == 3
    assert durations["dev", b][1] == pytest.approx(4.25, abs=1e-3)
    assert durations["prod", r][1] == pytest.approx(10.0, abs=1e-3)
    assert sorted(cat.last_successes()) == [("dev", b, T0 + timedelta(minutes=5)),
                                            ("prod", r, T0 + timedelta(hours=1))]
    assert all(at.tzinfo is not None for _e, _t, at in cat.last_successes())
