"""The activity queue in the catalog, on SQLite and on PostgreSQL alike: claims, the
one-activity-per-environment guard, leases, cancel requests, and concurrent claimers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from snapkeep.catalog import Activity, Catalog
from snapkeep.ids import new_id

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
LEASE = 30.0


def queued(cat: Catalog, env: str, n: int = 0, **kw) -> Activity:
    a = Activity(id=new_id(), environment=env, type="environment.backup", state="pending",
                 result=None, description=f"backup {n} of {env}",
                 created_at=T0 + timedelta(seconds=n), completion_percent=0, parameters={},
                 **kw)
    assert cat.enqueue(a) is None
    return a


def finish(cat: Catalog, a: Activity, worker: str) -> None:
    assert cat.finish(a.id, worker, state="complete", result="success")


def test_workers_get_the_oldest_pending_activity_and_never_two_of_one_environment(cat):
    first = queued(cat, "dev", 0)
    second = queued(cat, "dev", 1)
    other = queued(cat, "prod", 2)
    a = cat.claim_next("h:1:0", LEASE)
    b = cat.claim_next("h:2:0", LEASE)
    assert (a.id, b.id) == (first.id, other.id)
    assert cat.claim_next("h:3:0", LEASE) is None  # dev and prod both run something
    assert a.state == "in_progress" and a.worker == "h:1:0"
    assert a.lease_expires_at == cat.clock() + timedelta(seconds=LEASE)
    assert cat.running_activity("dev") == first.id

    finish(cat, a, "h:1:0")
    assert cat.running_activity("dev") is None
    c = cat.claim_next("h:3:0", LEASE)
    assert c.id == second.id
    assert cat.get_activity(first.id).state == "complete"


def test_workers_can_be_limited_to_some_environments(cat):
    queued(cat, "dev", 0)
    prod = queued(cat, "prod", 1)
    assert cat.claim_next("h:1:0", LEASE, environments=["prod"]).id == prod.id
    assert cat.claim_next("h:1:1", LEASE, environments=["prod", "stage"]) is None


def test_a_specific_claim_waits_for_older_activities_of_its_environment(cat):
    older = queued(cat, "dev", 0)
    newer = queued(cat, "dev", 1)
    assert cat.claim_specific(newer.id, "h:1:0", LEASE) is None
    assert cat.claim_specific(older.id, "h:1:0", LEASE).id == older.id
    assert cat.claim_specific(newer.id, "h:2:0", LEASE) is None  # dev is running
    finish(cat, cat.get_activity(older.id), "h:1:0")
    assert cat.claim_specific(newer.id, "h:2:0", LEASE).id == newer.id
    assert cat.claim_specific(newer.id, "h:3:0", LEASE) is None  # taken already


def test_an_activity_started_in_process_keeps_the_queue_off_its_environment(cat):
    now = Activity(id=new_id(), environment="dev", type="environment.backup",
                   state="in_progress", result=None, description="cli backup",
                   created_at=T0, completion_percent=0, parameters={})
    assert cat.start(now, "cli-host:42:0", LEASE, pid=42) is None
    assert cat.running_activity("dev") == now.id
    waiting = queued(cat, "dev", 5)  # a schedule queues behind it
    assert cat.claim_next("h:1:0", LEASE) is None
    # A user starting anything on dev is refused, naming what is there.
    refused = Activity(id=new_id(), environment="dev", type="environment.backup",
                       state="in_progress", result=None, description="another",
                       created_at=T0, completion_percent=0, parameters={})
    assert cat.start(refused, "cli-host:43:0", LEASE).id == now.id
    assert cat.enqueue(refused, unless_busy=True).id == now.id
    assert cat.get_activity(refused.id) is None
    finish(cat, cat.get_activity(now.id), "cli-host:42:0")
    # Now the queued one is what keeps a user's start out, until it ran.
    assert cat.start(refused, "cli-host:43:0", LEASE).id == waiting.id
    assert cat.claim_next("h:1:0", LEASE).id == waiting.id


def test_a_lease_expires_unless_renewed_and_a_reaped_worker_can_neither_renew_nor_finish(cat):
    a = queued(cat, "dev")
    cat.claim_next("h:1:0", LEASE)
    later = cat.clock() + timedelta(seconds=LEASE + 5)
    assert [x.id for x in cat.expired_leases(later)] == [a.id]
    assert cat.expired_leases() == []
    assert cat.renew_lease(a.id, "h:1:0", LEASE)
    assert not cat.renew_lease(a.id, "h:9:0", LEASE)  # not its worker

    # A renewal that came in after the reaper looked wins over the reaper.
    assert not cat.fail_interrupted(a.id, "x", lease_expired_before=cat.clock())
    assert cat.fail_interrupted(a.id, "worker h:1 stopped renewing its lease",
                                lease_expired_before=later, log="Failed: gone.")
    got = cat.get_activity(a.id)
    assert (got.state, got.result, got.error) == ("complete", "failure",
                                                  "worker h:1 stopped renewing its lease")
    assert [line.message for line in cat.log_lines(a.id)] == ["Failed: gone."]
    assert cat.running_activity("dev") is None
    assert not cat.renew_lease(a.id, "h:1:0", LEASE)
    assert not cat.finish(a.id, "h:1:0", state="complete", result="success")
    assert cat.get_activity(a.id).result == "failure"


def test_cancelling_ends_a_pending_activity_at_once_and_flags_a_running_one(cat):
    pending = queued(cat, "dev", 1)
    running = queued(cat, "prod", 0)
    assert cat.claim_next("h:1:0", LEASE).id == running.id
    logs = {"cancelled_log": "Cancelled by ann.", "requested_log": "ann asked to cancel."}

    got = cat.request_cancel(pending.id, "ann", **logs)
    assert (got.state, got.result, got.error) == ("cancelled", "failure", "cancelled by ann")
    assert cat.claim_next("h:2:0", LEASE) is None  # nothing left to claim
    assert cat.cancel_requested_by(running.id) is None
    got = cat.request_cancel(running.id, "bob", **logs)
    assert got.state == "in_progress" and got.cancel_requested
    assert cat.cancel_requested_by(running.id) == "bob"
    assert [line.message for line in cat.log_lines(pending.id)] == ["Cancelled by ann."]
    assert [line.message for line in cat.log_lines(running.id)] == ["ann asked to cancel."]
    assert cat.request_cancel("nope", "ann", **logs) is None


def test_concurrent_claimers_never_share_an_activity_nor_an_environment(catalog_url):
    """Twelve threads, each with its own engine (as separate hosts would be), drain 60
    activities over 6 environments; each holds its claim for a moment before finishing."""
    setup = Catalog.from_url(catalog_url)
    envs = [f"env{i}" for i in range(6)]
    expected = {queued(setup, envs[n % 6], n).id for n in range(60)}
    setup.engine.dispose()

    holders: dict[str, str] = {}
    claims: Counter[str] = Counter()
    problems: list[str] = []
    guard = threading.Lock()
    deadline = time.monotonic() + 120

    def claimer(n: int) -> None:
        cat = Catalog.from_url(catalog_url)
        me = f"h:{n}:0"
        try:
            while time.monotonic() < deadline:
                with guard:
                    if sum(claims.values()) >= len(expected):
                        return
                a = cat.claim_next(me, LEASE)
                if a is None:
                    time.sleep(0.002)
                    continue
                with guard:
                    claims[a.id] += 1
                    if a.environment in holders:
                        problems.append(f"{a.id} claimed while {holders[a.environment]} "
                                        f"runs on {a.environment}")
                    holders[a.environment] = a.id
                time.sleep(0.003)
                with guard:
                    del holders[a.environment]  # before the finish commits: no false alarm
                assert cat.finish(a.id, me, state="complete", result="success")
        except Exception as e:  # noqa: BLE001 - reported by the test
            problems.append(f"{me}: {type(e).__name__}: {e}")
        finally:
            cat.engine.dispose()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "claimers did not finish in time"
    assert problems == []
    assert set(claims) == expected and set(claims.values()) == {1}
    check = Catalog.from_url(catalog_url)
    assert {a.state for a in check.list_activities(limit=100)} == {"complete"}
    assert all(check.running_activity(e) is None for e in envs)
    check.engine.dispose()


def test_an_activity_queued_behind_others_is_not_queued_twice_by_one_actor(cat):
    def waiting(n: int, actor: str, type_: str = "environment.backup") -> Activity:
        return Activity(id=new_id(), environment="dev", type=type_, state="pending",
                        result=None, description=f"{type_} {n} of dev",
                        created_at=T0 + timedelta(seconds=n), completion_percent=0,
                        parameters={}, actor=actor)

    running = queued(cat, "dev", 0, actor="the scheduler")
    assert cat.claim_next("h:1:0", LEASE).id == running.id  # running is not waiting
    behind = waiting(1, "the scheduler")
    assert cat.enqueue(behind, unless_waiting=True) is None
    assert cat.enqueue(waiting(2, "the scheduler"), unless_waiting=True).id == behind.id
    # another actor's, or another kind of activity, still queues behind
    assert cat.enqueue(waiting(3, "ann@example.com"), unless_waiting=True) is None
    assert cat.enqueue(waiting(4, "the scheduler", "environment.verify"),
                       unless_waiting=True) is None
    assert len(cat.list_activities("dev", states=("pending",))) == 3
