"""Retention rules, one by one, on fixed timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from snapkeep.policy import RetentionPolicy, SnapshotFacts, plan_expiry

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def auto(when: str, sid: str | None = None) -> SnapshotFacts:
    t = datetime.fromisoformat(when).replace(tzinfo=UTC) if "+" not in when \
        else datetime.fromisoformat(when)
    return SnapshotFacts(sid or f"a-{when}", t, True, t + timedelta(days=7))


def manual(sid: str, expires: datetime | None) -> SnapshotFacts:
    return SnapshotFacts(sid, datetime(2026, 11, 1, tzinfo=UTC), False, expires)


def decide(snaps: list[SnapshotFacts], policy: RetentionPolicy,
           now: datetime = NOW) -> dict[str, tuple[bool, str]]:
    plan = plan_expiry(snaps, policy, now)
    assert [p[0] for p in plan] == snaps, "one row per snapshot, in the order given"
    return {facts.id: (keep, why) for facts, keep, why in plan}


def kept(snaps: list[SnapshotFacts], policy: RetentionPolicy) -> list[str]:
    return [sid for sid, (keep, _) in decide(snaps, policy).items() if keep]


# -- the policy object ----------------------------------------------------------------------

def test_a_policy_is_empty_only_when_every_count_is_zero():
    assert RetentionPolicy().is_empty()
    assert not RetentionPolicy(keep_monthly=1).is_empty()


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_a_count_that_is_not_a_whole_number_is_refused(bad):
    with pytest.raises(ValueError, match="keep_daily"):
        RetentionPolicy(keep_daily=bad)


# -- manual snapshots: the restore window ---------------------------------------------------

def test_a_manual_snapshot_is_kept_until_its_expiry_and_expires_at_that_instant():
    expires = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    s = manual("m", expires)
    before = decide([s], RetentionPolicy(), expires - timedelta(microseconds=1))
    assert before["m"] == (True, "within the restore window until 2026-11-26T12:00:00+00:00")
    assert decide([s], RetentionPolicy(), expires)["m"] == \
        (False, "expired on 2026-11-26T12:00:00+00:00")
    assert decide([s], RetentionPolicy(), expires + timedelta(days=3))["m"][0] is False


def test_manual_snapshots_follow_the_window_whatever_the_policy():
    snaps = [manual("old", datetime(2026, 11, 20, tzinfo=UTC)),
             manual("fresh", datetime(2026, 12, 1, tzinfo=UTC))]
    for policy in (RetentionPolicy(), RetentionPolicy(keep_last=10, keep_daily=10)):
        d = decide(snaps, policy)
        assert d["old"][0] is False and d["fresh"][0] is True


def test_a_manual_snapshot_without_an_expiry_is_kept():
    assert decide([manual("m", None)], RetentionPolicy(keep_last=1))["m"] == \
        (True, "manual, no expiry date")


def test_manual_snapshots_do_not_count_for_the_automated_rules():
    newest_manual = SnapshotFacts("m", datetime(2026, 11, 26, 11, tzinfo=UTC), False,
                                  datetime(2026, 12, 3, tzinfo=UTC))
    snaps = [newest_manual, auto("2026-11-26T10:00"), auto("2026-11-25T10:00")]
    assert kept(snaps, RetentionPolicy(keep_last=1)) == ["m", "a-2026-11-26T10:00"]


def test_an_expiry_in_another_timezone_is_compared_in_utc():
    plus2 = timezone(timedelta(hours=2))
    s = manual("m", datetime(2026, 11, 26, 13, 0, tzinfo=plus2))  # 11:00 UTC
    keep, why = decide([s], RetentionPolicy())["m"]
    assert keep is False and why == "expired on 2026-11-26T11:00:00+00:00"


# -- automated snapshots --------------------------------------------------------------------

def test_an_empty_policy_keeps_every_automated_snapshot_even_past_its_expiry():
    snaps = [auto("2025-01-01T00:00"), auto("2026-11-26T00:00")]
    d = decide(snaps, RetentionPolicy())
    assert all(keep for keep, _ in d.values())
    assert d["a-2025-01-01T00:00"][1] == "no retention policy: automated snapshots are all kept"


def test_keep_last_keeps_the_newest_whatever_the_input_order():
    times = [f"2026-11-2{d}T03:00" for d in range(1, 6)]
    snaps = [auto(t) for t in (times[2], times[0], times[4], times[1], times[3])]
    d = decide(snaps, RetentionPolicy(keep_last=3))
    assert {sid for sid, (keep, _) in d.items() if keep} == {f"a-{t}" for t in times[2:]}
    assert d["a-2026-11-25T03:00"] == (True, "keep-last 3")
    assert d["a-2026-11-21T03:00"] == (False, "not selected by any keep rule")


def test_keep_last_breaks_a_tie_in_time_by_the_greater_id():
    t = "2026-11-25T03:00"
    snaps = [auto(t, "0001"), auto(t, "0003"), auto(t, "0002")]
    assert kept(snaps, RetentionPolicy(keep_last=1)) == ["0003"]
    assert kept(snaps, RetentionPolicy(keep_last=2)) == ["0003", "0002"]


def test_keep_last_larger_than_the_list_keeps_everything():
    snaps = [auto("2026-11-25T03:00"), auto("2026-11-24T03:00")]
    assert len(kept(snaps, RetentionPolicy(keep_last=5))) == 2


def test_keep_hourly_keeps_the_newest_of_each_hour():
    snaps = [auto("2026-11-25T14:05"), auto("2026-11-25T14:55"), auto("2026-11-25T13:30"),
             auto("2026-11-25T11:00"), auto("2026-11-25T10:59")]
    d = decide(snaps, RetentionPolicy(keep_hourly=3))
    assert d["a-2026-11-25T14:55"] == (True, "keep-hourly 2026-11-25T14")
    assert d["a-2026-11-25T13:30"] == (True, "keep-hourly 2026-11-25T13")
    assert d["a-2026-11-25T11:00"] == (True, "keep-hourly 2026-11-25T11")
    assert not d["a-2026-11-25T14:05"][0] and not d["a-2026-11-25T10:59"][0]


def test_keep_daily_skips_days_without_a_snapshot():
    snaps = [auto("2026-11-25T10:00"), auto("2026-11-25T22:00"), auto("2026-11-24T02:00"),
             auto("2026-11-20T23:59"), auto("2026-11-19T12:00")]
    d = decide(snaps, RetentionPolicy(keep_daily=3))
    assert [sid for sid, (keep, _) in d.items() if keep] == [
        "a-2026-11-25T22:00", "a-2026-11-24T02:00", "a-2026-11-20T23:59"]
    assert d["a-2026-11-25T22:00"][1] == "keep-daily 2026-11-25"
    assert d["a-2026-11-20T23:59"][1] == "keep-daily 2026-11-20"
    assert d["a-2026-11-25T10:00"] == (False, "not selected by any keep rule")


def test_keep_daily_uses_the_utc_day():
    plus2 = "2026-11-26T01:30+02:00"  # 2026-11-25T23:30Z
    snaps = [auto(plus2, "late"), auto("2026-11-25T20:00", "earlier")]
    d = decide(snaps, RetentionPolicy(keep_daily=2))
    assert d["late"] == (True, "keep-daily 2026-11-25")
    assert d["earlier"][0] is False


def test_keep_daily_breaks_a_tie_in_time_by_the_greater_id():
    snaps = [auto("2026-11-25T03:00", "x1"), auto("2026-11-25T03:00", "x2")]
    assert kept(snaps, RetentionPolicy(keep_daily=1)) == ["x2"]


def test_keep_weekly_uses_iso_weeks_across_the_new_year():
    # 2027-01-01 (Friday) belongs to ISO week 2026-W53; 2027-01-04 (Monday) starts 2027-W01
    snaps = [auto("2027-01-04T00:00"), auto("2027-01-01T09:00"), auto("2026-12-28T09:00"),
             auto("2026-12-20T09:00")]
    d = decide(snaps, RetentionPolicy(keep_weekly=2))
    assert d["a-2027-01-04T00:00"] == (True, "keep-weekly 2027-W01")
    assert d["a-2027-01-01T09:00"] == (True, "keep-weekly 2026-W53")
    assert d["a-2026-12-28T09:00"][0] is False and d["a-2026-12-20T09:00"][0] is False


def test_keep_monthly_counts_only_months_that_have_a_snapshot():
    snaps = [auto("2026-11-30T00:00"), auto("2026-11-01T00:00"), auto("2026-08-15T00:00"),
             auto("2026-07-01T00:00")]
    d = decide(snaps, RetentionPolicy(keep_monthly=2))
    assert [sid for sid, (keep, _) in d.items() if keep] == [
        "a-2026-11-30T00:00", "a-2026-08-15T00:00"]
    assert d["a-2026-08-15T00:00"][1] == "keep-monthly 2026-08"


def test_a_snapshot_selected_by_several_rules_lists_every_reason():
    snaps = [auto("2026-11-25T22:00"), auto("2026-11-25T10:00"), auto("2026-11-23T10:00"),
             auto("2026-10-02T10:00"), auto("2026-09-30T10:00")]
    d = decide(snaps, RetentionPolicy(keep_last=2, keep_daily=2, keep_monthly=3))
    assert d["a-2026-11-25T22:00"] == (
        True, "keep-last 2, keep-daily 2026-11-25, keep-monthly 2026-11")
    assert d["a-2026-11-25T10:00"] == (True, "keep-last 2")
    assert d["a-2026-11-23T10:00"] == (True, "keep-daily 2026-11-23")
    assert d["a-2026-10-02T10:00"] == (True, "keep-monthly 2026-10")
    assert d["a-2026-09-30T10:00"] == (True, "keep-monthly 2026-09")


def test_a_long_gap_between_snapshots_keeps_the_older_ones_under_every_period_rule():
    snaps = [auto("2026-11-25T10:00"), auto("2026-06-01T10:00"), auto("2025-01-01T10:00")]
    for name in ("keep_hourly", "keep_daily", "keep_weekly", "keep_monthly"):
        assert len(kept(snaps, RetentionPolicy(**{name: 3}))) == 3, name
        assert kept(snaps, RetentionPolicy(**{name: 2})) == [
            "a-2026-11-25T10:00", "a-2026-06-01T10:00"], name


def test_naive_times_are_taken_as_utc():
    naive = SnapshotFacts("n", datetime(2026, 11, 25, 23, 30), True, None)
    aware = SnapshotFacts("w", datetime(2026, 11, 25, 20, 0, tzinfo=UTC), True, None)
    assert decide([naive, aware], RetentionPolicy(keep_daily=1)) == {
        "n": (True, "keep-daily 2026-11-25"), "w": (False, "not selected by any keep rule")}
    m = SnapshotFacts("m", datetime(2026, 11, 1), False, datetime(2026, 11, 26, 12, 0))
    assert decide([m], RetentionPolicy())["m"][0] is False


def test_no_snapshots_no_plan():
    assert plan_expiry([], RetentionPolicy(keep_last=1), NOW) == []


# -- point in time: one base snapshot always stays -----------------------------------------


def based(when: str, sid: str, base: bool = True) -> SnapshotFacts:
    return SnapshotFacts(id=sid, created_at=datetime.fromisoformat(when), automated=True,
                         expires_at=None, base=base)


def test_expiring_every_base_keeps_the_newest_one_for_the_window():
    snaps = [based("2026-11-20T00:00", "a"), based("2026-11-21T00:00", "b"),
             based("2026-11-22T00:00", "c"), based("2026-11-26T00:00", "d", base=False)]
    plan = plan_expiry(snaps, RetentionPolicy(keep_last=1), NOW, point_in_time=True)
    assert [(s.id, keep) for s, keep, _why in plan] == [
        ("a", False), ("b", False), ("c", True), ("d", True)]
    assert "the only base of the point-in-time window" in plan[2][2]
    # without point in time, the policy alone decides
    plain = plan_expiry(snaps, RetentionPolicy(keep_last=1), NOW)
    assert [keep for _s, keep, _why in plain] == [False, False, False, True]


def test_a_kept_base_lets_the_older_bases_expire():
    snaps = [based("2026-11-20T00:00", "a"), based("2026-11-21T00:00", "b")]
    plan = plan_expiry(snaps, RetentionPolicy(keep_last=1), NOW, point_in_time=True)
    assert [(s.id, keep, why) for s, keep, why in plan] == [
        ("a", False, "not selected by any keep rule"), ("b", True, "keep-last 1")]


def test_an_expired_manual_base_is_not_kept_as_the_base():
    old = SnapshotFacts(id="m", created_at=datetime(2026, 11, 1), automated=False,
                        expires_at=datetime(2026, 11, 8), base=True)
    plan = plan_expiry([old], RetentionPolicy(keep_last=1), NOW, point_in_time=True)
    assert [keep for _s, keep, _why in plan] == [False]
