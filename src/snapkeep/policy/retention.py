"""Which snapshots to keep and which have expired: pure rules, no I/O.

``plan_expiry(snapshots, policy, now)`` returns, for every snapshot in the order given,
``(facts, keep, reason)``. The rules:

**Manual snapshots** (``automated=False``) follow the restore window, whatever the
policy: kept while ``now < expires_at`` ("within the restore window until …"), expired
from ``expires_at`` on, the boundary instant included ("expired on …"), exactly like
``rules.is_restorable``. One without ``expires_at`` is kept ("no expiry date").

**Automated snapshots** follow the ``RetentionPolicy``, restic-style. They are ordered
newest first (by ``created_at``; snapshots created at the same instant by ``id``, the
greater id counting as newer — snapkeep ids sort by creation time). Then:

- ``keep_last`` N keeps the N newest ("keep-last N");
- ``keep_hourly`` / ``keep_daily`` / ``keep_weekly`` / ``keep_monthly`` N: walking newest
  to oldest, the first (newest) snapshot of each period is kept, for the N most recent
  periods *that have a snapshot* — periods without one are skipped, not counted, so a
  gap of several days does not use up ``keep_daily``. Periods are the UTC hour
  ("keep-hourly 2026-11-25T14"), day ("keep-daily 2026-11-25"), ISO 8601 week
  ("keep-weekly 2026-W48", weeks start on Monday and belong to the ISO year) and month
  ("keep-monthly 2026-11").

A snapshot selected by any rule is kept, the reason listing every rule that selected it
(joined with ", "); the others expire ("not selected by any keep rule"). An empty policy
(every count 0) keeps all automated snapshots ("no retention policy"). The
``expires_at`` of an automated snapshot plays no part.

**Point in time** (``point_in_time=True``: the environment archives its binary log,
docs/pitr.md): the recoverable window runs from the oldest kept *base* (a snapshot that
records its binlog position, ``SnapshotFacts.base``) to now. Expiring old bases just moves
the window's start forward; expiring every one would leave the archived events with
nothing to replay them onto. So when no kept snapshot is a base, the newest expiring
automated base is kept ("the only base of the point-in-time window"): one base, the
shortest window that still is one, and the least binlog held for it. A manual snapshot
past its ``expires_at`` is not restorable, so it is never kept as the base.

Times are UTC: aware datetimes are converted to UTC, naive ones are taken as UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{f.name} must be a whole number >= 0, not {value!r}")

    def is_empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class SnapshotFacts:
    """What the rules need to know about one snapshot."""

    id: str
    created_at: datetime
    automated: bool
    expires_at: datetime | None
    base: bool = False  # records a binlog position: point-in-time replay can start from it


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _stamp(t: datetime) -> str:
    return _utc(t).isoformat(timespec="seconds")


def _week(t: datetime) -> str:
    year, week, _ = t.isocalendar()
    return f"{year}-W{week:02d}"


# (policy field, reason label, period of a UTC time)
_PERIODS: tuple[tuple[str, str, Callable[[datetime], str]], ...] = (
    ("keep_hourly", "keep-hourly", lambda t: t.strftime("%Y-%m-%dT%H")),
    ("keep_daily", "keep-daily", lambda t: t.strftime("%Y-%m-%d")),
    ("keep_weekly", "keep-weekly", _week),
    ("keep_monthly", "keep-monthly", lambda t: t.strftime("%Y-%m")),
)


def _manual(s: SnapshotFacts, now: datetime) -> tuple[bool, str]:
    if s.expires_at is None:
        return True, "manual, no expiry date"
    if _utc(now) < _utc(s.expires_at):
        return True, f"within the restore window until {_stamp(s.expires_at)}"
    return False, f"expired on {_stamp(s.expires_at)}"


def _automated(snapshots: Sequence[SnapshotFacts], policy: RetentionPolicy
               ) -> dict[int, list[str]]:
    """Reasons to keep, by position in ``snapshots``, for its automated snapshots."""
    order = sorted((i for i, s in enumerate(snapshots) if s.automated),
                   key=lambda i: (_utc(snapshots[i].created_at), snapshots[i].id), reverse=True)
    reasons: dict[int, list[str]] = {i: [] for i in order}
    for i in order[: policy.keep_last]:
        reasons[i].append(f"keep-last {policy.keep_last}")
    for name, label, period_of in _PERIODS:
        wanted = getattr(policy, name)
        last: str | None = None
        for i in order:
            if wanted == 0:
                break
            period = period_of(_utc(snapshots[i].created_at))
            if period != last:
                reasons[i].append(f"{label} {period}")
                last = period
                wanted -= 1
    return reasons


BASE_REASON = "the only base of the point-in-time window (kept so the archived binlog has " \
    "a snapshot to replay onto)"


def plan_expiry(snapshots: Sequence[SnapshotFacts], policy: RetentionPolicy,
                now: datetime, *, point_in_time: bool = False
                ) -> list[tuple[SnapshotFacts, bool, str]]:
    """For every snapshot, in the order given: (facts, keep?, reason). See the module doc."""
    reasons = {} if policy.is_empty() else _automated(snapshots, policy)
    plan: list[tuple[SnapshotFacts, bool, str]] = []
    for i, s in enumerate(snapshots):
        if not s.automated:
            keep, why = _manual(s, now)
        elif policy.is_empty():
            keep, why = True, "no retention policy: automated snapshots are all kept"
        else:
            keep = bool(reasons[i])
            why = ", ".join(reasons[i]) if keep else "not selected by any keep rule"
        plan.append((s, keep, why))
    if point_in_time and not any(keep and s.base for s, keep, _why in plan):
        spare = [i for i, (s, _k, _w) in enumerate(plan) if s.base and s.automated]
        if spare:
            i = max(spare, key=lambda i: (_utc(plan[i][0].created_at), plan[i][0].id))
            plan[i] = (plan[i][0], True, BASE_REASON)
    return plan
