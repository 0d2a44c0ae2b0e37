from datetime import UTC, datetime, timedelta

import pytest

from snapkeep.errors import PermissionDenied, PolicyError
from snapkeep.policy import (
    Action,
    Actor,
    expires_at,
    is_restorable,
    local_operator,
    require_active,
    require_manual_snapshot_allowed,
    require_restorable,
    require_role,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_only_active_environments_can_be_snapshotted():
    require_active("dev", "active")
    with pytest.raises(PolicyError, match="environment:activate"):
        require_active("dev", "inactive")


@pytest.mark.parametrize("env_type", ["staging", "production"])
def test_pro_staging_and_production_get_automatic_backups_instead(env_type):
    with pytest.raises(PolicyError, match="automatic"):
        require_manual_snapshot_allowed("pro", env_type, "x")


@pytest.mark.parametrize("plan,env_type", [("pro", "development"), ("starter", "production"),
                                           ("starter", "staging")])
def test_manual_snapshots_are_allowed_elsewhere(plan, env_type):
    require_manual_snapshot_allowed(plan, env_type, "x")


def test_restore_window_is_seven_days_by_default_and_ends_exactly():
    created = NOW - timedelta(days=7)
    exp = expires_at(created, 7)
    assert exp == NOW
    assert is_restorable("complete", exp, NOW - timedelta(seconds=1))
    assert not is_restorable("complete", exp, NOW)
    with pytest.raises(PolicyError, match="expired on 2026-11-26T12:00:00"):
        require_restorable("abc", "complete", exp, NOW)


def test_incomplete_snapshots_are_not_restorable():
    assert not is_restorable("failed", None, NOW)
    with pytest.raises(PolicyError):
        require_restorable("abc", "failed", None, NOW)


@pytest.mark.parametrize("action", [Action.SNAPSHOT_CREATE, Action.SNAPSHOT_RESTORE,
                                    Action.SNAPSHOT_DELETE])
def test_creating_restoring_and_deleting_need_admin_on_the_environment(action):
    require_role(Actor("a", environment_roles={"dev": "admin"}), "dev", action)
    for actor in (Actor("c", environment_roles={"dev": "contributor"}),
                  Actor("v", project_role="viewer"), Actor("n"),
                  Actor("o", environment_roles={"other": "admin"})):
        with pytest.raises(PermissionDenied, match="Admin role"):
            require_role(actor, "dev", action)


def test_viewers_may_list_and_read_activities():
    for action in (Action.SNAPSHOT_READ, Action.ACTIVITY_READ):
        require_role(Actor("v", environment_roles={"dev": "viewer"}), "dev", action)
        require_role(Actor("pv", project_role="viewer"), "dev", action)
        with pytest.raises(PermissionDenied):
            require_role(Actor("n"), "dev", action)


def test_the_local_operator_is_project_admin_everywhere():
    require_role(local_operator(), "anything", Action.SNAPSHOT_RESTORE)
