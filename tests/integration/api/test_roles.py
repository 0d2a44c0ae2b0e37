"""The API role matrix, against a real ``snapkeep serve`` with a PostgreSQL catalog: every
endpoint × {no token, revoked token, viewer, contributor, environment admin, project
admin} answers the expected status, and a refused request changes nothing."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.helpers.postgres import postgres_database
from tests.helpers.server import (
    Server,
    TeamProject,
    drop_mysql_database,
    new_mysql_database,
    wait_activity,
    wait_for,
)

SHOP = TeamProject.SHOP
P = "/api/projects/team"
WHO = ("none", "revoked", "viewer", "contributor", "env_admin", "project_admin")


@dataclass
class World:
    project: TeamProject
    server: Server
    snapshot: str  # a snapshot of the shop, taken at the start
    activity: str  # the activity that took it

    def http(self, who: str) -> httpx.Client:
        return self.server.http(None if who == "none" else self.project.tokens[who])

    def admin(self) -> httpx.Client:
        return self.http("project_admin")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mariadb,
          postgres_server: str) -> Iterator[World]:
    base = tmp_path_factory.mktemp("api-roles")
    db = new_mysql_database(mariadb)
    try:
        with postgres_database(postgres_server, "snapkeep_api") as catalog:
            project = TeamProject(base, mariadb.url(db), catalog)
            server = Server(project.config, base, "--no-scheduler")
            try:
                with server.http(project.tokens["project_admin"]) as admin:
                    started = admin.post(f"{P}/environments/{SHOP}/backups",
                                         json={"safe": False})
                    assert started.status_code == 202, started.text
                    done = wait_activity(admin, started.json())
                assert done["result"] == "success", done
                yield World(project, server, done["snapshot_id"], done["id"])
            finally:
                project.release()  # a held pause still waiting ends too
                server.terminate()
                project.ctx.catalog.engine.dispose()
    finally:
        drop_mysql_database(mariadb, db)


# -- what each endpoint needs, and how to call it ----------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    name: str
    writes: bool  # needs Admin on the environment
    call: Callable[[World, httpx.Client, Any], httpx.Response]
    arrange: Callable[[World, bool], Any] = lambda w, allowed: None
    settle: Callable[[World, httpx.Response, Any], None] = lambda w, r, target: None
    ok: int = 200


def _fresh_snapshot(w: World, allowed: bool) -> str:
    """A snapshot to delete: a new one when the deletion will go through."""
    if not allowed:
        return w.snapshot
    with w.admin() as admin:
        r = admin.post(f"{P}/environments/{SHOP}/backups", json={"safe": False})
        assert r.status_code == 202, r.text
        return wait_activity(admin, r.json())["snapshot_id"]


def _held_activity(w: World, _allowed: bool) -> str:
    """A backup of ``held`` caught in its pause (running, cancellable)."""
    w.project.hold()
    with w.admin() as admin:
        r = admin.post(f"{P}/environments/held/backups", json={"safe": True})
        assert r.status_code == 202, r.text
    wait_for(lambda: w.project.paused("held"), "the held backup to pause")
    return r.json()["id"]


def _settle_activity(w: World, r: httpx.Response, _target: Any) -> None:
    """Let what the call started run to its end (so the next case is not busy)."""
    if r.status_code != 202:
        return
    with w.admin() as admin:
        assert wait_activity(admin, r.json())["result"] == "success", r.text


def _settle_cancel(w: World, r: httpx.Response, target: str) -> None:
    """End the held backup: cancelled by the call if it was allowed, else by an admin."""
    with w.admin() as admin:
        if r.status_code != 200:
            assert admin.post(f"{P}/activities/{target}/cancel").status_code == 200
        w.project.release()
        done = wait_activity(admin, {"id": target,
                                     "links": {"self": f"{P}/activities/{target}"}})
    assert (done["state"], done["result"]) == ("cancelled", "failure"), done
    wait_for(lambda: not w.project.paused("held"), "the held environment to resume")


def _upload(w: World, h: httpx.Client, _target: Any) -> httpx.Response:
    """An import directory holding one small SQL dump, uploaded as a tar."""
    sql = b"CREATE TABLE uploaded (a INT PRIMARY KEY);\nINSERT INTO uploaded VALUES (1);\n"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|") as tar:
        info = tarfile.TarInfo("dump.sql")
        info.size = len(sql)
        tar.addfile(info, io.BytesIO(sql))
    return h.post(f"{P}/environments/{SHOP}/backups/import", content=out.getvalue(),
                  headers={"Content-Type": "application/x-tar"})


def _settle_upload(w: World, r: httpx.Response, target: Any) -> None:
    """No staging directory stays (a refused upload never made one), then as any start."""
    uploads = w.project.base / ".snapkeep" / "uploads"
    if r.status_code != 202:
        assert not [p for p in uploads.glob("*") if p.is_dir()], "a staging directory stayed"
    _settle_activity(w, r, target)


ENDPOINTS = [
    Endpoint("list environments", False, lambda w, h, t: h.get(f"{P}/environments")),
    Endpoint("get an environment", False,
             lambda w, h, t: h.get(f"{P}/environments/{SHOP}")),
    Endpoint("list backups", False,
             lambda w, h, t: h.get(f"{P}/environments/{SHOP}/backups")),
    Endpoint("get a backup", False,
             lambda w, h, t: h.get(f"{P}/environments/{SHOP}/backups/{w.snapshot}")),
    Endpoint("create a backup", True,
             lambda w, h, t: h.post(f"{P}/environments/{SHOP}/backups", json={"safe": False}),
             settle=_settle_activity, ok=202),
    Endpoint("restore a backup", True,
             lambda w, h, t: h.post(f"{P}/environments/{SHOP}/backups/{w.snapshot}/restore"),
             settle=_settle_activity, ok=202),
    Endpoint("verify a backup (restore drill)", True,
             lambda w, h, t: h.post(f"{P}/environments/{SHOP}/backups/{w.snapshot}/verify"),
             settle=_settle_activity, ok=202),
    Endpoint("delete a backup", True,
             lambda w, h, t: h.delete(f"{P}/environments/{SHOP}/backups/{t}"),
             arrange=_fresh_snapshot, settle=_settle_activity, ok=202),
    Endpoint("list a backup's export", True,
             lambda w, h, t: h.get(f"{P}/environments/{SHOP}/backups/{w.snapshot}/export")),
    Endpoint("download a backup's database", True,
             lambda w, h, t: h.get(f"{P}/environments/{SHOP}/backups/{w.snapshot}/export/"
                                   "database.sql.zst")),
    Endpoint("download a backup's mount", True,
             lambda w, h, t: h.get(f"{P}/environments/{SHOP}/backups/{w.snapshot}/export/"
                                   "mounts/var.tar.zst")),
    Endpoint("import a backup (upload)", True, _upload, settle=_settle_upload, ok=202),
    # this project has no replica: past the role check, an Admin hears it is unknown
    # (tests/integration/api/test_pull.py pulls into a real one)
    Endpoint("pull backups to a replica", True,
             lambda w, h, t: h.post(f"{P}/environments/{SHOP}/backups/pull/offsite"), ok=422),
    Endpoint("list activities", False, lambda w, h, t: h.get(f"{P}/activities")),
    Endpoint("list an environment's activities", False,
             lambda w, h, t: h.get(f"{P}/activities", params={"environment": SHOP})),
    Endpoint("get an activity", False,
             lambda w, h, t: h.get(f"{P}/activities/{w.activity}")),
    Endpoint("read an activity's log", False,
             lambda w, h, t: h.get(f"{P}/activities/{w.activity}/log")),
    Endpoint("cancel an activity", True,
             lambda w, h, t: h.post(f"{P}/activities/{t}/cancel"),
             arrange=_held_activity, settle=_settle_cancel),
]


def expected(endpoint: Endpoint, who: str) -> int:
    if who in ("none", "revoked"):
        return 401
    if endpoint.writes and who in ("viewer", "contributor"):
        return 403
    return endpoint.ok


CASES = [pytest.param(e, who, expected(e, who), id=f"{e.name} as {who} is {expected(e, who)}")
         for e in ENDPOINTS for who in WHO]


@pytest.mark.parametrize(("endpoint", "who", "status"), CASES)
def test_each_endpoint_answers_each_role_as_the_rules_say(world: World, endpoint: Endpoint,
                                                          who: str, status: int) -> None:
    target = endpoint.arrange(world, status < 400)
    before = world.project.fingerprint()
    with world.http(who) as h:
        r = endpoint.call(world, h, target)
    try:
        assert r.status_code == status, r.text
        if status >= 400:
            err = r.json()["error"]
            assert err["status"] == status and err["message"]
            if status == 401:
                assert r.headers["WWW-Authenticate"] == "Bearer"
                assert ("revoked" in err["message"]) == (who == "revoked"), err
            if status == 403:
                assert "Admin role" in err["message"] and "Ask a project admin" in \
                    err["message"], err
            assert world.project.fingerprint() == before, "a refused request changed state"
    finally:
        endpoint.settle(world, r, target)


def test_a_user_sees_only_the_environments_and_activities_they_have_a_role_on(world: World):
    ctx = world.project.ctx
    from snapkeep.services.identity import auth, users

    users.add_user(ctx, "held-only@example.com", "Held Only")
    users.set_environment_role(ctx, "held-only@example.com", "held", "viewer")
    token = auth.create_token(ctx, "held-only@example.com")[1]
    with world.server.http(token) as h:
        assert [e["name"] for e in h.get(f"{P}/environments").json()] == ["held"]
        assert {a["environment"] for a in h.get(f"{P}/activities").json()} <= {"held"}
        refused = h.get(f"{P}/environments/{SHOP}/backups")
        assert refused.status_code == 403
        assert "no role on environment develop-branch" in refused.json()["error"]["message"]
        assert h.get(f"{P}/activities/{world.activity}").status_code == 403


def test_a_project_viewer_reads_every_environment_but_changes_none(world: World):
    ctx = world.project.ctx
    from snapkeep.services.identity import auth, users

    users.add_user(ctx, "watcher@example.com", "Watcher", project_role="viewer")
    token = auth.create_token(ctx, "watcher@example.com")[1]
    before = world.project.fingerprint()
    with world.server.http(token) as h:
        names = [e["name"] for e in h.get(f"{P}/environments").json()]
        assert names == ["develop-branch", "dormant", "held"]
        assert h.post(f"{P}/environments/{SHOP}/backups").status_code == 403
    assert world.project.fingerprint() == before


def test_the_matrix_tests_were_able_to_change_state(world: World) -> None:
    """The fingerprint sees what an allowed request does (so its equality means something)."""
    before = world.project.fingerprint()
    with world.admin() as admin:
        r = admin.post(f"{P}/environments/{SHOP}/backups", json={"safe": False})
        wait_activity(admin, r.json())
    assert world.project.fingerprint() != before


def test_matrix_covers_every_api_path(world: World) -> None:
    """A new endpoint must join the matrix: the OpenAPI document lists no path it misses."""
    doc = httpx.get(f"{world.server.url}/api/openapi.json", timeout=30).json()
    project_paths = {(p, m) for p, ops in doc["paths"].items() if p.startswith("/api/projects/")
                     for m in ops}
    assert len(project_paths) == len([e for e in ENDPOINTS
                                      if e.name != "list an environment's activities"])
