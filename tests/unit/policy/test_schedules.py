from datetime import UTC, datetime, timedelta, timezone

import pytest

from snapkeep.errors import PermissionDenied, UsageError
from snapkeep.policy import (
    Actor,
    PlanSchedule,
    next_run,
    next_runs,
    plan_schedule,
    require_schedule_role,
    validate_cron,
)

T = datetime(2026, 11, 26, 10, 7, tzinfo=UTC)


@pytest.mark.parametrize("expr,fragments", [
    ("0 3 * *", ["has 4 field(s)", "exactly 5", "minute hour day-of-month month day-of-week"]),
    ("0 3 * * * *", ["has 6 field(s)", "no seconds or years"]),
    ("61 * * * *", ["the minute field '61'", "0-59"]),
    ("0 25 * * *", ["the hour field '25'", "0-23"]),
    ("0 3 0 * *", ["the day-of-month field '0'", "1-31"]),
    ("0 3 * 13 *", ["the month field '13'", "jan-dec"]),
    ("0 3 * * 8", ["the day-of-week field '8'", "sun-sat"]),
    ("*/0 * * * *", ["the minute field '*/0'"]),
    ("0 3 * * mo", ["the day-of-week field 'mo'"]),
    ("0 0 30 2 *", ["never matches a real date"]),
    ("@often", ["unknown macro", "@hourly"]),
    ("   ", ["empty"]),
])
def test_a_bad_cron_expression_is_refused_naming_what_is_wrong_with_an_example(expr, fragments):
    with pytest.raises(UsageError) as e:
        validate_cron(expr)
    for f in fragments:
        assert f in str(e.value)
    assert '"0 3 * * *"' in str(e.value)


@pytest.mark.parametrize("expr,normal", [
    ("0 3 * * *", "0 3 * * *"), ("  */15   *  * * * ", "*/15 * * * *"),
    ("0 3 * * mon-fri", "0 3 * * mon-fri"), ("@Daily", "@daily"), ("0 0 29 2 *", "0 0 29 2 *"),
])
def test_good_cron_expressions_are_accepted_with_whitespace_normalised(expr, normal):
    assert validate_cron(expr) == normal


def test_the_next_run_is_the_first_matching_minute_strictly_after():
    assert next_run("0 3 * * *", T) == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    assert next_run("*/10 * * * *", T) == datetime(2026, 11, 26, 10, 10, tzinfo=UTC)
    exactly = datetime(2026, 11, 26, 10, 10, tzinfo=UTC)
    assert next_run("*/10 * * * *", exactly) == datetime(2026, 11, 26, 10, 20, tzinfo=UTC)


def test_schedule_times_are_utc_whatever_zone_the_clock_reads_in():
    tokyo = T.astimezone(timezone(timedelta(hours=9)))
    assert next_run("0 3 * * *", tokyo) == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    assert next_run("0 3 * * *", T.replace(tzinfo=None)) == next_run("0 3 * * *", T)
    assert next_run("0 3 * * *", T).utcoffset() == timedelta(0)


def test_next_runs_lists_the_following_periods():
    assert next_runs("0 3 * * *", T) == [datetime(2026, 11, d, 3, 0, tzinfo=UTC)
                                         for d in (27, 28, 29)]


def test_missed_periods_run_once_then_the_schedule_resumes_its_rhythm():
    # Due at 10:10, but nothing ran until 13:05: the run at 13:05 is followed by 13:10,
    # not by the 17 periods that were missed.
    late = datetime(2026, 11, 26, 13, 5, tzinfo=UTC)
    assert next_run("*/10 * * * *", late) == datetime(2026, 11, 26, 13, 10, tzinfo=UTC)


@pytest.mark.parametrize("env_type", ["staging", "production"])
def test_pro_staging_and_production_get_an_hourly_live_backup(env_type):
    # live: an hourly consistent backup would put production in maintenance every hour
    assert plan_schedule("pro", env_type) == PlanSchedule(cron="0 * * * *", live=True)


@pytest.mark.parametrize("plan,env_type", [("pro", "development"), ("starter", "staging"),
                                           ("starter", "production"),
                                           ("starter", "development")])
def test_other_plans_and_environment_types_get_no_default_schedule(plan, env_type):
    assert plan_schedule(plan, env_type) is None


def test_managing_schedules_needs_admin_and_listing_needs_viewer():
    viewer = Actor("vic", environment_roles={"prod": "viewer"})
    contributor = Actor("cat", environment_roles={"prod": "contributor"})
    require_schedule_role(viewer, "prod", manage=False)
    require_schedule_role(Actor("ada", project_role="admin"), "prod", manage=True)
    require_schedule_role(Actor("eve", environment_roles={"prod": "admin"}), "prod", manage=True)
    with pytest.raises(PermissionDenied, match="cat has the contributor role .* Admin role"):
        require_schedule_role(contributor, "prod", manage=True)
    with pytest.raises(PermissionDenied, match="nobody has no role on environment prod"):
        require_schedule_role(Actor("nobody"), "prod", manage=False)
