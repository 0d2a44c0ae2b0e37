"""The REST API as a client sees it, against a real ``snapkeep serve`` (SQLite catalog):
backups that complete, log streams that end with a seal line, and refusals (404, 409,
422) whose JSON says what to do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient

from snapkeep.api.app import create_app
from snapkeep.config import load_config
from snapkeep.services.context import Context
from tests.helpers.server import (
    Server,
    TeamProject,
    drop_mysql_database,
    ndjson,
    new_mysql_database,
    wait_activity,
    wait_for,
)

SHOP = TeamProject.SHOP
P = "/api/projects/team"


@dataclass
class World:
    project: TeamProject
    server: Server

    def admin(self) -> httpx.Client:
        return self.server.http(self.project.tokens["project_admin"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mariadb) -> Iterator[World]:
    base = tmp_path_factory.mktemp("api")
    db = new_mysql_database(mariadb)
    project = TeamProject(base, mariadb.url(db))
    server = Server(project.config, base, "--no-scheduler")
    try:
        yield World(project, server)
    finally:
        project.release()
        server.terminate()
        drop_mysql_database(mariadb, db)


@pytest.fixture
def admin(world: World) -> Iterator[httpx.Client]:
    with world.admin() as client:
        yield client


def error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["status"] == status
    return body["error"]["message"]


@pytest.fixture
def held(world: World, admin: httpx.Client) -> Iterator[dict]:
    """A backup of ``held`` caught in its pause; cancelled and ended afterwards."""
    world.project.hold()
    r = admin.post(f"{P}/environments/held/backups", json={"safe": True})
    assert r.status_code == 202, r.text
    wait_for(lambda: world.project.paused("held"), "the held backup to pause")
    yield r.json()
    admin.post(f"{P}/activities/{r.json()['id']}/cancel")
    world.project.release()
    wait_activity(admin, r.json())


def test_a_backup_through_the_api_completes_and_its_log_ends_with_the_seal_line(admin):
    r = admin.post(f"{P}/environments/{SHOP}/backups", json={"safe": True})
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["state"] == "pending" and started["type"] == "environment.backup"
    assert started["description"] == "Project Admin created a backup of develop-branch"
    assert r.headers["Location"] == started["links"]["self"] == f"{P}/activities/{started['id']}"
    for key in ("id", "type", "state", "result", "completion_percent", "environment",
                "description", "created_at", "started_at", "completed_at", "snapshot_id",
                "error", "links"):
        assert key in started, key

    done = wait_activity(admin, started)
    assert (done["state"], done["result"], done["completion_percent"]) == \
        ("complete", "success", 100)
    snap = done["snapshot_id"]

    with admin.stream("GET", started["links"]["log"]) as stream:
        assert stream.headers["content-type"].startswith("application/x-ndjson")
        lines = ndjson(stream.iter_lines())
    assert lines[-1] == {"sealed": True, "state": "complete", "result": "success",
                         "snapshot_id": snap, "error": None}
    messages = [ln["message"] for ln in lines if "message" in ln]
    assert f"Created backup {snap}" in " ".join(messages)
    assert "Paused develop-branch (var/.maintenance.flag)" in messages
    ids = [ln["id"] for ln in lines if "message" in ln]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    listed = admin.get(f"{P}/environments/{SHOP}/backups").json()
    assert listed[0]["id"] == snap
    assert {"id", "created_at", "restorable", "expires_at", "live", "automated", "size_bytes",
            "added_bytes", "commit_id"} <= set(listed[0])
    assert listed[0]["live"] is False and listed[0]["restorable"] is True
    detail = admin.get(f"{P}/environments/{SHOP}/backups/{snap}").json()
    assert sorted(detail["mounts"]) == ["app/etc", "pub/media", "var"] and detail["database"]
    env = admin.get(f"{P}/environments/{SHOP}").json()
    assert (env["name"], env["type"], env["status"]) == (SHOP, "development", "active")
    assert env["last_backup"]["id"] == snap


def test_the_log_streams_while_the_activity_runs(world: World, admin, held):
    with admin.stream("GET", held["links"]["log"]) as stream:
        lines = stream.iter_lines()
        first = json.loads(next(ln for ln in lines if ln.strip()))
        # the activity is still held in its pause: this line came before the end
        assert first["message"] == "Creating backup of held"
        assert admin.get(held["links"]["self"]).json()["state"] == "in_progress"
        world.project.release()
        rest = ndjson(lines)
    assert rest[-1]["sealed"] is True and rest[-1]["result"] == "success"
    assert any("Created backup" in ln.get("message", "") for ln in rest)


def test_after_resumes_a_log_and_follow_false_does_not_wait(world: World, admin, held):
    now = ndjson(admin.get(held["links"]["log"], params={"follow": "false"}).iter_lines())
    assert not any(ln.get("sealed") for ln in now)  # still running: no seal yet
    last = max(ln["id"] for ln in now if "message" in ln)
    world.project.release()
    wait_activity(admin, held)
    rest = ndjson(admin.get(held["links"]["log"], params={"after": last}).iter_lines())
    assert all(ln["id"] > last for ln in rest if "message" in ln)
    assert rest[-1]["sealed"] is True


def test_a_busy_environment_answers_409_and_says_what_holds_it(admin, held):
    message = error(admin.post(f"{P}/environments/held/backups", json={}), 409)
    assert held["id"] in message and "only one activity runs per environment" in message
    r = admin.get(f"{P}/environments/held").json()
    assert r["running_activity"] == held["id"]


def test_cancel_stops_a_running_activity_and_a_second_cancel_of_a_complete_one_is_409(
        world: World, admin, held):
    r = admin.post(held["links"]["cancel"])
    assert r.status_code == 200 and r.json()["state"] == "in_progress"
    world.project.release()
    done = wait_activity(admin, held)
    assert (done["state"], done["result"]) == ("cancelled", "failure")
    wait_for(lambda: not world.project.paused("held"), "held to resume")
    ok = admin.post(f"{P}/environments/held/backups", json={"safe": False})
    done = wait_activity(admin, ok.json())
    assert "already completed" in error(admin.post(ok.json()["links"]["cancel"]), 409)


def test_an_inactive_environment_answers_409_with_how_to_activate_it(world: World, admin):
    before = world.project.fingerprint()
    message = error(admin.post(f"{P}/environments/dormant/backups"), 409)
    assert "dormant is inactive" in message and "environment:activate" in message
    assert world.project.fingerprint() == before


@pytest.mark.parametrize(("path", "fragment"), [
    ("/api/projects/shop/environments", "this server serves project 'team'"),
    (f"{P}/environments/nowhere", "environment 'nowhere' does not exist"),
    (f"{P}/environments/nowhere/backups", "environment 'nowhere' does not exist"),
    (f"{P}/environments/{SHOP}/backups/nosuchsnapshot", "snapshot nosuchsnapshot does not"),
    (f"{P}/activities/nosuchactivity", "activity nosuchactivity does not exist"),
    (f"{P}/activities/nosuchactivity/log", "activity nosuchactivity does not exist"),
    ("/api/nothing/here", "the API lives under /api/projects/PROJECT"),
])
def test_what_does_not_exist_answers_404_naming_it(admin, path, fragment):
    assert fragment in error(admin.get(path), 404)


def test_a_restore_of_a_missing_snapshot_is_404_and_changes_nothing(world: World, admin):
    before = world.project.fingerprint()
    error(admin.post(f"{P}/environments/{SHOP}/backups/nosuch/restore"), 404)
    error(admin.delete(f"{P}/environments/{SHOP}/backups/nosuch"), 404)
    assert world.project.fingerprint() == before


@pytest.mark.parametrize(("body", "fragment"), [
    ({"safe": "perhaps"}, "field 'safe': Input should be a valid boolean"),
    ({"safe": True, "speed": 3}, "field 'speed': is not a known field"),
    ({"threads": 0}, "field 'threads'"),
    ([1, 2], "the body"),
])
def test_a_bad_body_answers_422_with_a_readable_message(world: World, admin, body, fragment):
    before = world.project.fingerprint()
    message = error(admin.post(f"{P}/environments/{SHOP}/backups", json=body), 422)
    assert fragment in message and '{"safe": true}' in message
    assert world.project.fingerprint() == before


def test_a_body_that_is_not_json_answers_422(admin):
    r = admin.post(f"{P}/environments/{SHOP}/backups", content=b"{safe: yes",
                   headers={"Content-Type": "application/json"})
    assert "the body is not valid JSON" in error(r, 422)


def test_a_bad_query_parameter_answers_422(admin):
    r = admin.get(f"{P}/activities", params={"state": "sleeping"})
    assert "query parameter 'state'" in error(r, 422)


@pytest.mark.parametrize("after", ["99999999999999999999", "-1", "x"])
def test_a_log_resumed_after_an_impossible_line_answers_422(world: World, admin, after):
    done = admin.get(f"{P}/activities", params={"limit": 1}).json() or \
        [wait_activity(admin, admin.post(f"{P}/environments/{SHOP}/backups").json())]
    r = admin.get(f"{P}/activities/{done[0]['id']}/log", params={"after": after})
    assert "query parameter 'after'" in error(r, 422)
    assert "Traceback" not in world.server.log()


def test_activities_filter_by_environment_and_state(world: World, admin, held):
    admin.post(held["links"]["cancel"])
    world.project.release()
    wait_activity(admin, held)
    on_held = admin.get(f"{P}/activities", params={"environment": "held"}).json()
    assert on_held[0]["id"] == held["id"] and {a["environment"] for a in on_held} == {"held"}
    cancelled = admin.get(f"{P}/activities", params={"state": "cancelled"}).json()
    assert held["id"] in [a["id"] for a in cancelled]
    assert {a["state"] for a in cancelled} == {"cancelled"}
    complete = admin.get(f"{P}/activities", params={"state": "complete"}).json()
    assert held["id"] not in [a["id"] for a in complete]
    assert len(admin.get(f"{P}/activities", params={"limit": 1}).json()) == 1


def test_the_openapi_document_describes_the_api_and_its_bearer_tokens(world: World):
    doc = httpx.get(f"{world.server.url}/api/openapi.json", timeout=30).json()
    paths = doc["paths"]
    for path in (f"{P.replace('team', '{project}')}/environments/{{env}}/backups",
                 "/api/projects/{project}/environments/{env}/backups/{backup_id}/restore",
                 "/api/projects/{project}/activities/{activity_id}/log",
                 "/api/projects/{project}/activities/{activity_id}/cancel",
                 "/api/projects/{project}/environments/{env}"):
        assert path in paths, path
    post = paths["/api/projects/{project}/environments/{env}/backups"]["post"]
    assert "202" in post["responses"] and "409" in post["responses"]
    schemes = doc["components"]["securitySchemes"]
    assert any(s.get("scheme", "").lower() == "bearer" for s in schemes.values())
    # no Swagger UI (its page loads scripts from a CDN) unless SNAPKEEP_API_DOCS asks for it
    assert httpx.get(f"{world.server.url}/api/docs", timeout=30).status_code == 404


def test_the_swagger_ui_is_served_when_asked_for(world: World, monkeypatch):
    def app():
        return create_app(lambda: Context(load_config(str(world.project.config))))

    monkeypatch.setenv("SNAPKEEP_API_DOCS", "1")
    assert TestClient(app()).get("/api/docs").status_code == 200
    monkeypatch.setenv("SNAPKEEP_API_DOCS", "0")
    assert TestClient(app()).get("/api/docs").status_code == 404


def test_api_root_names_the_project_and_the_token_owner(world: World, admin):
    info = admin.get("/api").json()
    assert info["project"] == "team"
    assert info["actor"]["email"] == "project-admin@example.com"
    assert info["actor"]["project_role"] == "admin"
    assert error(httpx.get(f"{world.server.url}/api", timeout=30), 401)


def test_a_partial_restore_through_the_api_restores_only_the_named_mount(world: World, admin):
    done = wait_activity(admin, admin.post(f"{P}/environments/{SHOP}/backups",
                                           json={"safe": False}).json())
    snap = done["snapshot_id"]
    shop = world.project.base / "shop"
    log = shop / "var" / "log" / "system.log"
    env_php = shop / "app" / "etc" / "env.php"
    log.write_text("changed\n")
    env_php.write_text("<?php // changed\n")
    r = admin.post(f"{P}/environments/{SHOP}/backups/{snap}/restore",
                   json={"mounts": ["var"]})
    assert r.status_code == 202, r.text
    assert r.json()["description"].endswith("(only mount var)")
    done = wait_activity(admin, r.json())
    assert done["result"] == "success", done
    assert log.read_text() == "started\n"
    assert env_php.read_text() == "<?php // changed\n"  # app/etc was not named


@pytest.mark.parametrize(("body", "status", "fragment"), [
    ({"target": "dormant", "only": "mounts"}, 409, "environment dormant is inactive"),
    ({"target": "nowhere"}, 404, "environment 'nowhere' does not exist"),
    ({"tables": ["no_such_table"]}, 404, "has no table no_such_table"),
    ({"only": "everything"}, 422, "field 'only'"),
    ({"only": "database", "mounts": ["var"]}, 422, "--only database restores no mounts"),
    ({"at": "2026-12-05T10:19:59Z"}, 422, "point_in_time = true"),  # not archived
    ({"at": "soon"}, 422, "neither a time nor a GTID"),
    ({"at": "2026-12-05T10:19:59Z", "only": "mounts"}, 422, "--at restores the database"),
])
def test_a_bad_restore_target_or_part_is_refused_before_anything_changes(
        world: World, admin, body, status, fragment):
    listed = admin.get(f"{P}/environments/{SHOP}/backups").json()
    snap = listed[0]["id"] if listed else wait_activity(admin, admin.post(
        f"{P}/environments/{SHOP}/backups", json={"safe": False}).json())["snapshot_id"]
    before = world.project.fingerprint()
    message = error(admin.post(f"{P}/environments/{SHOP}/backups/{snap}/restore", json=body),
                    status)
    assert fragment in message
    assert world.project.fingerprint() == before
