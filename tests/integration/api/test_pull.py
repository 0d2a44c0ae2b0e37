"""``POST …/backups/pull/{replica}``: how a shop tells an off-site server to pull."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from snapkeep.api.app import create_app
from snapkeep.services import replicas
from snapkeep.services.activities import operations
from snapkeep.services.activities.workers import Worker
from snapkeep.services.identity import auth
from tests.helpers.console import ADMIN, VIEWER, make_project

P = "/api/projects/shop/environments/develop-branch/backups/pull"


def test_a_pull_queues_a_copy_of_what_the_replica_lacks(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    with open(project.config, "a") as f:
        f.write(f'\n[replicas.offsite]\nlocation = "{tmp_path / "offsite"}"\n')
    ctx = project.context()
    replicas.init_replica(ctx, "offsite")
    sid = operations.start_backup(ctx, ctx.config.environment("develop-branch"),
                                  live=True).snapshot_id
    client = TestClient(create_app(project.context))
    for who, expected in ((VIEWER, 403), (ADMIN, 202)):
        client.headers["Authorization"] = f"Bearer {auth.create_token(ctx, who[0])[1]}"
        res = client.post(f"{P}/offsite")
        assert res.status_code == expected, res.text
    queued = res.json()
    assert queued["type"] == replicas.COPY and queued["state"] == "pending"
    assert client.post(f"{P}/elsewhere").status_code == 422
    # a worker runs it; then nothing is missing
    Worker(project.context()).run_once()
    assert ctx.in_replica("offsite").repository.has_snapshot(sid)
    res = client.post(f"{P}/offsite")
    assert res.status_code == 200 and res.json() is None
