"""Long lists over the API come in pages: ``limit`` and ``offset`` on the backups and
the activities of an environment (what the console's pages use, #13 item 16)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from snapkeep.api.app import create_app
from snapkeep.services.activities import operations
from snapkeep.services.identity import auth
from tests.helpers.console import VIEWER, make_project

P = "/api/projects/shop"
ENV = "develop-branch"


def test_backups_and_activities_are_paged_with_limit_and_offset(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    ctx = project.context()
    env = ctx.config.environment(ENV)
    taken = [operations.start_backup(ctx, env, live=True).snapshot_id for _ in range(5)]
    newest_first = taken[::-1]
    acts = [a.id for a in ctx.catalog.list_activities(ENV, limit=100)]
    token = auth.create_token(ctx, VIEWER[0])[1]  # a viewer may list both
    with TestClient(create_app(project.context),
                    headers={"Authorization": f"Bearer {token}"}) as h:
        backups = f"{P}/environments/{ENV}/backups"
        assert [b["id"] for b in h.get(backups).json()] == newest_first  # all, by default
        page = h.get(backups, params={"limit": 2, "offset": 1})
        assert [b["id"] for b in page.json()] == newest_first[1:3]
        assert h.get(backups, params={"offset": 5}).json() == []
        assert h.get(backups, params={"limit": 0}).status_code == 422
        for params in ({"environment": ENV}, {}):
            listed = h.get(f"{P}/activities", params={**params, "limit": 2, "offset": 3})
            assert [a["id"] for a in listed.json()] == acts[3:5], params
        assert h.get(f"{P}/activities", params={"offset": -1}).status_code == 422
