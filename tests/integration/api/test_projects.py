"""One server, two projects (#19): ``shop`` and ``shop2`` on one catalog (a SQLite file,
then PostgreSQL) behind one API. Users are shared, roles are per project: ``GET
/api/projects`` lists what the token's user has a role in, each project's routes act with
the user's roles there, and ``/metrics`` labels every sample with its project."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from snapkeep.api.app import create_app
from snapkeep.errors import ConfigError
from snapkeep.policy import local_operator
from snapkeep.services import projects
from snapkeep.services.identity import auth, users
from tests.helpers.clock import ManualClock
from tests.helpers.postgres import catalog_url  # noqa: F401 - fixture
from tests.helpers.project_files import project_on_catalog as make_project

T0 = datetime(2026, 11, 26, 9, 58, tzinfo=UTC)


@pytest.fixture
def served(tmp_path, catalog_url):  # noqa: F811 - the fixture imported above
    clock = ManualClock(T0)
    for pid in ("shop", "shop2"):
        make_project(tmp_path / pid, pid, catalog_url, clock).catalog.dispose()
    contexts = projects.load_projects([str(tmp_path)])  # a directory of configs
    assert [c.config.id for c in contexts] == ["shop", "shop2"]
    shop, shop2 = contexts
    shop.actor = shop2.actor = local_operator()
    users.add_user(shop, "ann@example.org", "Ann", project_role="admin")
    users.add_user(shop, "bob@example.org", "Bob")
    users.set_environment_role(shop2, "bob@example.org", "staging", "viewer")
    tokens = {who: auth.create_token(shop, f"{who}@example.org")[1] for who in ("ann", "bob")}
    app = create_app(lambda: contexts)
    yield app, tokens
    shop.catalog.dispose()


def client(app, token: str) -> TestClient:
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


def test_the_projects_a_user_has_a_role_in(served):
    app, tokens = served
    ann = client(app, tokens["ann"]).get("/api/projects")
    assert ann.status_code == 200, ann.text
    assert [(p["id"], p["project_role"]) for p in ann.json()] == [("shop", "admin")]
    bob = client(app, tokens["bob"]).get("/api/projects").json()
    assert [(p["id"], p["environment_roles"]) for p in bob] == [("shop2", {"staging": "viewer"})]
    assert bob[0]["links"]["environments"] == "/api/projects/shop2/environments"


def test_api_describes_the_first_project_the_user_has_a_role_in(served):
    app, tokens = served
    assert client(app, tokens["ann"]).get("/api").json()["project"] == "shop"
    bob = client(app, tokens["bob"]).get("/api").json()
    assert bob["project"] == "shop2"
    assert bob["actor"]["environment_roles"] == {"staging": "viewer"}


def test_each_projects_routes_act_with_the_users_roles_there(served):
    app, tokens = served
    ann, bob = client(app, tokens["ann"]), client(app, tokens["bob"])
    r = ann.post("/api/projects/shop/environments/staging/backups", json={"safe": True})
    assert r.status_code == 202, r.text
    # ann is shop's admin, and nobody in shop2
    r = ann.post("/api/projects/shop2/environments/staging/backups", json={"safe": True})
    assert r.status_code == 403, r.text
    assert bob.get("/api/projects/shop2/environments/staging/backups").status_code == 200
    assert bob.get("/api/projects/shop/environments/staging/backups").status_code == 403
    r = bob.get("/api/projects/nope/environments")
    assert r.status_code == 404 and "shop, shop2" in r.json()["error"]["message"]
    # shop's activity is shop's alone
    assert [a["environment"] for a in ann.get("/api/projects/shop/activities").json()] \
        == ["staging"]
    assert bob.get("/api/projects/shop2/activities").json() == []


def test_metrics_are_labelled_by_project(served):
    app, tokens = served
    text = client(app, tokens["ann"]).get("/metrics").text
    assert 'snapkeep_info{project="shop"' in text
    assert 'snapkeep_snapshots{project="shop",environment="staging"} 0' in text
    assert 'project="shop2"' not in text  # ann has no role there
    text = client(app, tokens["bob"]).get("/metrics").text
    assert 'snapkeep_snapshots{project="shop2",environment="staging"} 0' in text
    assert 'project="shop"' not in text


def test_projects_served_together_share_one_catalog(tmp_path):
    clock = ManualClock(T0)
    for pid in ("a", "b"):
        make_project(tmp_path / pid, pid, f"sqlite:///{tmp_path / pid / 'own.db'}", clock)
    with pytest.raises(ConfigError, match="share one catalog"):
        projects.load_projects([str(tmp_path / "a"), str(tmp_path / "b")])
    with pytest.raises(ConfigError, match="both project 'a'"):
        projects.load_projects([str(tmp_path / "a" / "snapkeep.toml")] * 2)
