"""What the API reads before it knows who asks, and how much (#13 item 4), against a real
``snapkeep serve``: a body without a valid token is answered 401 without being read, and
a JSON body over 1 MiB is refused with 413, by its Content-Length or as it streams."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.server import Server, TeamProject

P = f"/api/projects/team/environments/{TeamProject.SHOP}/backups"
MIB = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, TeamProject]]:
    base = tmp_path_factory.mktemp("limits")
    project = TeamProject(base, None)
    server = Server(project.config, base, "--no-scheduler", "--workers", "0")
    try:
        yield server, project
    finally:
        server.terminate()


class Body:
    """A streamed (chunked) body of ``total`` bytes of a JSON document, counting what the
    client was asked for: what the server read, give or take the sockets' buffers."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        piece = b" " * MIB
        yield b'{"safe": true, "pad": "'
        while self.sent < self.total:
            self.sent += len(piece)
            yield piece
        yield b'"}'


def post(server: Server, body: Body, token: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(base_url=server.url, timeout=120) as c:
        return c.post(P, content=body, headers=headers)


@pytest.mark.parametrize("token", [None, "sk_not-a-token-of-this-server", "revoked"])
def test_a_big_body_without_a_valid_token_gets_401_unread(server, token):
    srv, project = server
    body = Body(256 * MIB)
    r = post(srv, body, project.tokens.get(token, token) if token else None)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["type"] == "AuthenticationError"
    assert body.sent < 32 * MIB, f"the server read {body.sent >> 20} MiB before its 401"


def test_a_json_body_over_1_mib_is_refused_with_413_as_it_streams(server):
    srv, project = server
    body = Body(64 * MIB)
    r = post(srv, body, project.tokens["project_admin"])
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["type"] == "BodyTooLarge" and "larger than 1024 KiB" in error["message"]
    assert body.sent < 32 * MIB
    assert project.ctx.catalog.list_activities(limit=10) == []  # nothing was started


def test_a_declared_length_over_1_mib_is_refused_before_reading(server):
    srv, project = server
    doc = json.dumps({"safe": True, "pad": " " * (2 * MIB)}).encode()
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        r = c.post(P, content=doc, headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {project.tokens['project_admin']}"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "BodyTooLarge", r.text
    assert project.ctx.catalog.list_activities(limit=10) == []


def test_a_small_body_still_works_and_health_needs_no_token(server):
    srv, project = server
    with srv.http(project.tokens["viewer"]) as c:
        r = c.post(P, json={"safe": False})
        assert r.status_code == 403, r.text  # a viewer: refused by role, after the gate
    assert httpx.get(f"{srv.url}/api/health", timeout=30).status_code == 200
    assert httpx.get(f"{srv.url}/api/openapi.json", timeout=30).status_code == 200


def test_a_console_form_posted_without_a_session_goes_to_sign_in_unread(server):
    srv, _project = server
    body = Body(256 * MIB)
    with httpx.Client(base_url=srv.url, timeout=120) as c:
        r = c.post(f"/environments/{TeamProject.SHOP}/backups", content=body,
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 303 and r.headers["location"].startswith("/signin"), r.text
    assert body.sent < 32 * MIB, f"the server read {body.sent >> 20} MiB before the redirect"


def test_a_sign_in_form_over_1_mib_is_refused_with_413(server):
    srv, _project = server
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        r = c.post("/signin", data={"email": "a@example.com", "password": "x" * (2 * MIB)})
    assert r.status_code == 413 and "larger than 1024 KiB" in r.text
