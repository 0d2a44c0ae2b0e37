"""Schedules in the catalog: adding, listing, deleting, the plan's defaults, claiming."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapkeep.errors import NotFoundError, PermissionDenied, PolicyError, UsageError
from snapkeep.policy import Actor
from snapkeep.services.schedules import manage as schedules
from tests.helpers.project_files import context, write_project

T = datetime(2026, 11, 26, 10, 7, tzinfo=UTC)


@pytest.fixture
def pro(tmp_path: Path) -> Path:
    return write_project(tmp_path, "pro", {"production": "production", "staging": "staging",
                                           "dev": "development"})


def test_an_added_schedule_is_listed_with_its_next_run_in_utc(pro):
    ctx = context(pro)
    s = schedules.add_schedule(ctx, ctx.config.environment("dev"), " 0  3 * * *", live=True,
                               at=T)
    assert (s.cron, s.live, s.origin, s.created_by) == ("0 3 * * *", True, "user",
                                                        "local operator")
    assert s.next_run_at == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    assert schedules.upcoming(ctx, s) == [datetime(2026, 11, d, 3, 0, tzinfo=UTC)
                                     for d in (27, 28, 29)]
    (listed,) = schedules.list_schedules(ctx, ctx.config.environment("dev"))
    assert listed == s


def test_a_bad_cron_expression_adds_nothing(pro):
    ctx = context(pro)
    with pytest.raises(UsageError, match="hour field"):
        schedules.add_schedule(ctx, ctx.config.environment("dev"), "0 24 * * *")
    assert ctx.catalog.list_schedules("dev") == []


def test_pro_staging_and_production_show_an_hourly_plan_schedule(pro):
    ctx = context(pro)
    listed = schedules.list_schedules(ctx)
    assert sorted((s.environment, s.cron, s.live, s.origin) for s in listed) == [
        ("production", "0 * * * *", True, "plan"), ("staging", "0 * * * *", True, "plan")]
    assert {s.mode for s in listed} == {"live"}


def test_plan_schedules_are_materialised_once_however_often_asked(pro):
    ctx = context(pro)
    first = schedules.ensure_plan_schedules(ctx, T)
    assert sorted(s.environment for s in first) == ["production", "staging"]
    assert first[0].next_run_at == datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
    assert schedules.ensure_plan_schedules(ctx, T + timedelta(hours=1)) == []
    assert schedules.ensure_plan_schedules(context(pro), T) == []  # another process, too
    assert len(ctx.catalog.list_schedules(origin="plan")) == 2


def test_plan_schedules_follow_the_plan_when_it_changes(pro, tmp_path):
    ctx = context(pro)
    schedules.ensure_plan_schedules(ctx, T)
    schedules.add_schedule(ctx, ctx.config.environment("production"), "0 3 * * *")
    write_project(tmp_path, "starter", {"production": "production", "staging": "staging"})
    starter = context(pro)
    assert schedules.ensure_plan_schedules(starter, T) == []
    assert [(s.environment, s.origin) for s in starter.catalog.list_schedules()] == [
        ("production", "user")]


def test_a_user_schedule_can_be_deleted_but_the_plan_schedule_cannot(pro):
    ctx = context(pro)
    mine = schedules.add_schedule(ctx, ctx.config.environment("production"), "0 3 * * *")
    plan = next(s for s in schedules.list_schedules(ctx) if s.origin == "plan")
    assert schedules.delete_schedule(ctx, mine.id) == mine
    with pytest.raises(PolicyError, match="comes from the project's Pro plan"):
        schedules.delete_schedule(ctx, plan.id)
    assert ctx.catalog.get_schedule(plan.id) is not None
    with pytest.raises(NotFoundError, match="schedule:list"):
        schedules.delete_schedule(ctx, mine.id)


def test_viewers_list_schedules_and_only_admins_change_them(pro):
    admin = context(pro)
    s = schedules.add_schedule(admin, admin.config.environment("dev"), "0 3 * * *")
    viewer = context(pro, Actor("vic", environment_roles={"dev": "viewer"}))
    assert [x.id for x in schedules.list_schedules(viewer)] == [s.id]
    with pytest.raises(PermissionDenied, match="Admin role to manage its backup schedules"):
        schedules.add_schedule(viewer, viewer.config.environment("dev"), "0 4 * * *")
    with pytest.raises(PermissionDenied):
        schedules.delete_schedule(viewer, s.id)
    with pytest.raises(PermissionDenied, match="list its backup schedules"):
        schedules.list_schedules(viewer, viewer.config.environment("staging"))
    assert len(admin.catalog.list_schedules("dev")) == 1


def test_someone_without_a_role_neither_sees_nor_can_probe_a_schedule(pro):
    admin = context(pro)
    s = schedules.add_schedule(admin, admin.config.environment("dev"), "0 3 * * *")
    stranger = context(pro, Actor("sam", environment_roles={"staging": "admin"}))
    assert [x.environment for x in schedules.list_schedules(stranger)] == ["staging"]
    with pytest.raises(NotFoundError):
        schedules.delete_schedule(stranger, s.id)


def test_only_the_first_of_two_claims_on_one_run_wins(pro):
    ctx = context(pro)
    s = schedules.add_schedule(ctx, ctx.config.environment("dev"), "*/10 * * * *", at=T)
    row = ctx.catalog.get_schedule(s.id)  # read back: as the scheduler sees it
    later = row.next_run_at + timedelta(minutes=10)
    assert ctx.catalog.claim_schedule(s.id, row.next_run_at, later, T)
    assert not ctx.catalog.claim_schedule(s.id, row.next_run_at, later, T)
    after = ctx.catalog.get_schedule(s.id)
    assert (after.next_run_at, after.last_run_at) == (later, T)
