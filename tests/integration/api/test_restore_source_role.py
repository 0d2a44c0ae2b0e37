"""A restore into another environment needs, on the source, the role an export of it
needs (#13 item 5): otherwise a Viewer of A who is Admin of B restores A into B and
exports B, taking A's data out. Over the API, with two users."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from snapkeep.api.app import create_app
from snapkeep.policy import Action, Actor
from snapkeep.policy.rules import may
from snapkeep.services.activities import operations
from snapkeep.services.identity import auth, users
from tests.helpers.console import ADMIN, ConsoleProject, make_project

SOURCE, TARGET = "develop-branch", "staging"
P = "/api/projects/shop"
MIXED = "mixed@example.com"  # Viewer of the source, Admin of the target


@pytest.fixture
def project(tmp_path: Path) -> ConsoleProject:
    project = make_project(tmp_path)
    ctx = project.context()
    users.add_user(ctx, MIXED, "Max Mixed")
    users.set_environment_role(ctx, MIXED, SOURCE, "viewer")
    users.set_environment_role(ctx, MIXED, TARGET, "admin")
    users.set_environment_role(ctx, ADMIN[0], TARGET, "admin")  # Ada: Admin of both
    (project.app_root / "var" / "secret.txt").write_text("develop-branch's data\n")
    return project


def api(project: ConsoleProject, email: str) -> TestClient:
    ctx = project.context()
    token = auth.create_token(ctx, email)[1]
    client = TestClient(create_app(project.context))
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def snapshot(project: ConsoleProject) -> str:
    ctx = project.context()
    done = operations.start_backup(ctx, ctx.config.environment(SOURCE), live=True)
    assert done.result == "success" and done.snapshot_id
    return done.snapshot_id


def test_a_viewer_of_the_source_may_not_restore_it_into_an_environment_they_administer(
        project: ConsoleProject) -> None:
    sid = snapshot(project)
    before = len(project.context().catalog.list_activities(limit=1000))
    with api(project, MIXED) as h:
        # They may read it, but not export it...
        assert h.get(f"{P}/environments/{SOURCE}/backups/{sid}").status_code == 200
        export = h.get(f"{P}/environments/{SOURCE}/backups/{sid}/export")
        assert export.status_code == 403
        # ...and a restore into the target would let them export it from there.
        r = h.post(f"{P}/environments/{SOURCE}/backups/{sid}/restore",
                   json={"target": TARGET, "mounts": ["var"]})
    assert r.status_code == 403, r.text
    message = r.json()["error"]["message"]
    assert f"the viewer role on environment {SOURCE}" in message, message
    assert "you need the Admin role to restore its snapshots into another environment" \
        in message, message
    assert len(project.context().catalog.list_activities(limit=1000)) == before
    assert not (project.base / TARGET / "var" / "secret.txt").exists()


def test_restoring_into_another_environment_and_exporting_need_the_same_role_on_the_source(
        project: ConsoleProject) -> None:
    """Ada, Admin of both, may do both; the rule is the same one."""
    for role in ("viewer", "contributor", "admin"):
        someone = Actor("someone", environment_roles={SOURCE: role})
        assert may(someone, SOURCE, Action.SNAPSHOT_RESTORE_ELSEWHERE) == \
            may(someone, SOURCE, Action.SNAPSHOT_EXPORT), role
    sid = snapshot(project)
    with api(project, ADMIN[0]) as h:
        assert h.get(f"{P}/environments/{SOURCE}/backups/{sid}/export").status_code == 200
        r = h.post(f"{P}/environments/{SOURCE}/backups/{sid}/restore",
                   json={"target": TARGET, "mounts": ["var"]})
    assert r.status_code == 202, r.text
    assert r.json()["environment"] == TARGET
