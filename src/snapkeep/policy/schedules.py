"""Schedules of automatic backups: cron expressions, their next runs, the Pro plan's default.

Pure rules, no I/O. Times are UTC: aware datetimes are converted, naive ones taken as UTC.

A cron expression has five fields — minute, hour, day of month, month, day of week — or
is one of the macros ``@hourly``, ``@daily`` (``@midnight``), ``@weekly``, ``@monthly``,
``@yearly`` (``@annually``). ``next_run(cron, after)`` is the first matching minute
strictly after ``after``: a schedule that missed several periods (the server was down)
runs once, at the next tick, and then at its next period.

On the ``pro`` plan every staging and production environment gets an hourly, live
automatic backup (``PLAN_CRON``), as the hosted platforms' "regular backups by default",
which take no downtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from snapkeep.errors import PermissionDenied, UsageError
from snapkeep.policy.rules import Actor

EXAMPLE = '"0 3 * * *" (every day at 03:00 UTC) or "*/15 * * * *" (every 15 minutes)'
MACROS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")
# (name, what it accepts), in field order
FIELDS: tuple[tuple[str, str], ...] = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day-of-week", "0-7 or sun-sat, 0 and 7 both Sunday"),
)
SYNTAX = "a number, *, a list a,b, a range a-b, or a step */n"

PLAN_CRON = "0 * * * *"  # hourly, on the hour
PLAN_ENV_TYPES = ("staging", "production")


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def validate_cron(expression: str) -> str:
    """The expression with its whitespace normalised, or UsageError naming what is wrong."""
    from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

    expr = " ".join(expression.split())
    if not expr:
        raise UsageError(f"the cron expression is empty; write five fields (minute hour "
                         f"day-of-month month day-of-week), for example {EXAMPLE}")
    if expr.startswith("@"):
        if expr.lower() not in MACROS:
            raise UsageError(f"cron expression {expr!r}: unknown macro; use one of "
                             f"{', '.join(MACROS)}, or five fields, for example {EXAMPLE}")
        return expr.lower()
    parts = expr.split(" ")
    if len(parts) != len(FIELDS):
        raise UsageError(
            f"cron expression {expr!r} has {len(parts)} field(s); a schedule needs exactly 5: "
            f"minute hour day-of-month month day-of-week (no seconds or years), for example "
            f"{EXAMPLE}")
    for i, ((name, accepts), value) in enumerate(zip(FIELDS, parts, strict=True)):
        alone = " ".join(value if j == i else "*" for j in range(len(FIELDS)))
        try:
            croniter(alone)
        except CroniterError:
            raise UsageError(
                f"cron expression {expr!r}: the {name} field {value!r} is not valid; it takes "
                f"{accepts} ({SYNTAX}). For example {EXAMPLE}") from None
    try:
        croniter(expr, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise UsageError(f"cron expression {expr!r} never matches a real date (such as "
                         f"30 February); pick days that exist, for example {EXAMPLE}") from None
    except CroniterBadCronError as e:  # a combination the per-field checks cannot see
        raise UsageError(f"cron expression {expr!r} is not valid ({e}); for example "
                         f"{EXAMPLE}") from None
    return expr


def next_run(expression: str, after: datetime) -> datetime:
    """The first time ``expression`` matches strictly after ``after`` (UTC, aware)."""
    from croniter import croniter  # loaded only where schedules are computed (start-up)

    expr = validate_cron(expression)
    return _utc(croniter(expr, _utc(after)).get_next(datetime))


def next_runs(expression: str, after: datetime, count: int = 3) -> list[datetime]:
    """The next ``count`` times ``expression`` matches after ``after``."""
    out: list[datetime] = []
    t = after
    for _ in range(count):
        t = next_run(expression, t)
        out.append(t)
    return out


@dataclass(frozen=True)
class PlanSchedule:
    """The automatic backup a plan gives an environment."""

    cron: str
    live: bool


def plan_schedule(plan: str, env_type: str) -> PlanSchedule | None:
    """The schedule the plan gives an environment of this type, or None.

    Live: a consistent backup pauses the environment for the whole dump, which hourly
    means production in maintenance every hour; the hosted platforms' automatic backups
    take no downtime either. Consistent backups are opt-in: ``schedule:add`` without
    ``--live``.
    """
    if plan == "pro" and env_type in PLAN_ENV_TYPES:
        return PlanSchedule(cron=PLAN_CRON, live=True)
    return None


def require_schedule_role(actor: Actor, environment: str, *, manage: bool) -> None:
    """Adding and deleting schedules needs Admin on the environment; listing, Viewer."""
    needed, doing = ("admin", "manage its backup schedules") if manage else \
        ("viewer", "list its backup schedules")
    role = actor.role_on(environment)
    rank = {"viewer": 1, "contributor": 2, "admin": 3}
    if role is None or rank[role] < rank[needed]:
        have = f"the {role} role" if role else "no role"
        raise PermissionDenied(
            f"{actor.name} has {have} on environment {environment}; you need the "
            f"{needed.capitalize()} role to {doing}. Ask a project admin to grant it.")
