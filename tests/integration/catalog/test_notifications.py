"""The webhook outbox and activity warnings in the catalog, on SQLite and PostgreSQL alike:
an attempt is claimed by one process only, an activity is notified once, warnings
accumulate, and migration 0004 keeps what an older catalog held."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from snapkeep.catalog import Activity, Catalog, Notification
from snapkeep.catalog.catalog import HEAD
from snapkeep.ids import new_id
from tests.helpers.catalog import catalog_at_revision


def ended_activity(cat: Catalog, env: str = "dev") -> Activity:
    at = cat.clock()
    a = Activity(id=new_id(), environment=env, type="environment.backup", state="complete",
                 result="success", description="d", created_at=at, started_at=at,
                 completed_at=at, completion_percent=100, parameters={})
    cat.add_activity(a)
    return a


def queued(cat: Catalog, a: Activity, due: datetime | None = None) -> Notification:
    n = Notification(id=new_id(), activity_id=a.id, payload={"activity": {"id": a.id}},
                     attempts=0, next_attempt_at=due or cat.clock(), state="pending",
                     created_at=cat.clock())
    assert cat.add_notification(n)
    return n


def test_only_one_of_many_claimers_gets_an_attempt(cat):
    n = queued(cat, ended_activity(cat))
    won: list[Notification] = []
    start = threading.Barrier(8)

    def claimer() -> None:
        start.wait(timeout=30)
        got = cat.claim_notification(n.id, 60)
        if got is not None:
            won.append(got)

    threads = [threading.Thread(target=claimer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(won) == 1 and won[0].attempts == 1
    # claimed: not due again until the claim's hold has passed
    assert cat.due_notifications() == []
    later = cat.clock() + timedelta(seconds=60)
    assert cat.due_notifications(later) == [n.id]


def test_a_failed_attempt_is_due_again_at_its_retry_time_and_delivered_once(cat):
    n = queued(cat, ended_activity(cat))
    assert cat.claim_notification(n.id, 30) is not None
    retry_at = cat.clock() + timedelta(seconds=4)
    cat.notification_retry(n.id, "HTTP 500 Internal Server Error", retry_at)
    got = cat.get_notification(n.id)
    assert (got.state, got.attempts, got.last_error) == ("pending", 1,
                                                        "HTTP 500 Internal Server Error")
    assert cat.claim_notification(n.id, 30) is None  # not due yet
    second = cat.claim_notification(n.id, 30, at=retry_at)
    assert second is not None and second.attempts == 2
    cat.notification_delivered(n.id)
    assert cat.get_notification(n.id).state == "delivered"
    assert cat.claim_notification(n.id, 30, at=retry_at + timedelta(hours=1)) is None
    assert cat.notification_counts() == {"pending": 0, "delivered": 1, "failed": 0}


def test_an_activity_is_notified_once(cat):
    a = ended_activity(cat)
    queued(cat, a)
    again = Notification(id=new_id(), activity_id=a.id, payload={}, attempts=0,
                         next_attempt_at=cat.clock(), state="pending",
                         created_at=cat.clock())
    assert cat.add_notification(again) is False
    assert cat.get_notification(again.id) is None


def test_warnings_accumulate_on_the_activity_and_in_its_log(cat):
    a = ended_activity(cat)
    assert cat.get_activity(a.id).warnings is None
    assert cat.add_warning(a.id, "first")
    assert cat.add_warning(a.id, "second", log=False)
    assert cat.get_activity(a.id).warnings == ["first", "second"]
    assert [ln.message for ln in cat.log_lines(a.id)] == ["Warning: first"]
    assert cat.add_warning("nope", "x") is False


def test_concurrent_warnings_are_all_kept(cat):
    a = ended_activity(cat)
    threads = [threading.Thread(target=cat.add_warning, args=(a.id, f"w{i}"))
               for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(cat.get_activity(a.id).warnings) == [f"w{i}" for i in range(6)]


def test_migration_0004_keeps_the_activities_of_an_older_catalog(tmp_path):
    catalog_at_revision(tmp_path, "0003", (
        "INSERT INTO activities (id, environment, type, state, result, description, "
        "created_at, completion_percent, parameters, cancel_requested) VALUES ('a1', "
        "'dev', 'environment.backup', 'complete', 'success', 'd', '2026-11-26 10:00:00', "
        "100, '{}', 0)"))
    cat = Catalog.at(tmp_path)
    assert HEAD >= "0004"
    a = cat.get_activity("a1")
    assert (a.state, a.warnings) == ("complete", None)
    queued(cat, a)
    assert cat.notification_counts()["pending"] == 1
