"""Until the replay lands, a restore asked for a point in time (``at``) fails with a clear
line and changes nothing: it is never silently a plain restore (services/activities/
runners.py). The replay's merge replaces this guard, and this test with it."""

from __future__ import annotations

import pytest

from snapkeep.errors import UsageError
from snapkeep.services.activities import operations
from snapkeep.services.activities.info import RESTORE
from tests.helpers.console import ENV, make_project


def test_a_restore_at_a_time_is_refused_and_changes_nothing(tmp_path):
    project = make_project(tmp_path)
    ctx = project.context()
    env = ctx.config.environment(ENV)
    logo = project.app_root / "pub" / "media" / "logo.txt"
    sid = operations.start_backup(ctx, env, live=True).snapshot_id
    logo.write_text("changed since the backup\n")
    with pytest.raises(UsageError, match="point in time"):
        operations.start_restore(ctx, env, sid, at="2026-12-05T12:00:00Z")
    (done,) = ctx.catalog.list_activities(ENV, types=(RESTORE,))
    assert done.result == "failure"
    assert "restoring to a point in time (2026-12-05T12:00:00Z) is not available" in done.error
    assert done.parameters["at"] == "2026-12-05T12:00:00Z"
    assert logo.read_text() == "changed since the backup\n"
