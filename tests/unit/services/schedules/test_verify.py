"""The `verify` key of an environment becomes a schedule of restore drills."""

import dataclasses
from datetime import UTC, datetime

import pytest

from snapkeep.errors import ConfigError, PolicyError
from snapkeep.services.schedules import manage as schedules
from tests.helpers.project_files import context

T = datetime(2026, 11, 26, 10, 7, tzinfo=UTC)


def project(base, verify: str | None):
    path = base / "snapkeep.toml"
    path.write_text('[project]\nid = "p"\n[environments.dev]\nroot = "app"\nmounts = ["var"]\n'
                    + (f'verify = "{verify}"\n' if verify is not None else "")
                    + '[environments.qa]\nroot = "qa"\nmounts = ["var"]\n')
    return path


def drills(ctx):
    return [s for s in schedules.list_schedules(ctx) if s.origin == schedules.VERIFY]


def test_the_verify_key_is_one_schedule_that_follows_the_config(tmp_path):
    ctx = context(project(tmp_path, "0  4 * * *"))
    schedules.ensure_verify_schedules(ctx, T)
    (s,) = drills(ctx)
    assert (s.environment, s.cron, s.mode) == ("dev", "0 4 * * *", "restore drill")
    assert s.next_run_at == datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
    assert schedules.ensure_verify_schedules(ctx, T) == []  # idempotent
    with pytest.raises(PolicyError, match="verify = "):
        schedules.delete_schedule(ctx, s.id)

    ctx = context(project(tmp_path, "30 2 * * *"))
    (s2,) = drills(ctx)
    assert (s2.id, s2.cron) == (s.id, "30 2 * * *")
    ctx = context(project(tmp_path, None))
    assert drills(ctx) == []


def test_a_bad_verify_cron_is_refused_when_the_config_loads(tmp_path):
    with pytest.raises(ConfigError, match="not a valid cron expression"):
        context(project(tmp_path, "61 * * * *"))


def test_a_bad_verify_cron_schedules_nothing_and_stops_nothing(tmp_path, caplog):
    """Behind the config's check, the scheduler itself never dies of a bad expression
    (an EnvironmentConfig may be built without the loader)."""
    ctx = context(project(tmp_path, "0 4 * * *"))
    env = ctx.config.environments["dev"]
    ctx.config.environments["dev"] = dataclasses.replace(env, verify="61 * * * *")
    assert schedules.ensure_verify_schedules(ctx, T) == []
    assert drills(ctx) == []
    assert "not a valid cron expression" in caplog.text
