"""A project for the web console's tests: environments, users with roles, a served app."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from snapkeep.config import load_config
from snapkeep.services.activities import operations
from snapkeep.services.activities.workers import start_worker_threads
from snapkeep.services.context import Context
from snapkeep.services.identity import users
from snapkeep.web import create_router

ADMIN = ("ada@example.com", "Ada Admin", "ada's long password")
VIEWER = ("vic@example.com", "Vic Viewer", "vic's long password")
OUTSIDER = ("oz@example.com", "Oz Outsider", "oz's long password")
ENV = "develop-branch"  # the environment make_project configures


@dataclass
class ConsoleProject:
    """``develop-branch`` (development; mounts, and a database when given) and
    ``staging`` (Pro staging when the plan is pro). Ada is Admin and Vic Viewer on
    develop-branch; Oz has no role anywhere."""

    base: Path
    config: Path

    def context(self) -> Context:
        return Context(load_config(str(self.config)))

    @property
    def app_root(self) -> Path:
        return self.base / "app"


def make_project(base: Path, *, database: str | None = None, plan: str = "starter",
                 mounts: tuple[str, ...] = ("var", "pub/media"),
                 pause_command: str | None = None,
                 resume_command: str | None = None) -> ConsoleProject:
    app = base / "app"
    for m in mounts:
        (app / m).mkdir(parents=True, exist_ok=True)
    (app / "pub" / "media").mkdir(parents=True, exist_ok=True)
    (app / "pub" / "media" / "logo.txt").write_text("the shop's logo\n")
    (base / "staging" / "var").mkdir(parents=True)
    quoted = ", ".join(f'"{m}"' for m in mounts)
    db = f'database = "{database}"\n' if database else ""
    if pause_command and resume_command:  # TOML literal strings: no escapes inside
        db += f"pause_command = '{pause_command}'\nresume_command = '{resume_command}'\n"
    config = base / "snapkeep.toml"
    config.write_text(
        f'[project]\nid = "shop"\nplan = "{plan}"\n\n'
        '[repository]\nkey_file = ".snapkeep/repository.key"\n\n'
        f'[environments.develop-branch]\ntype = "development"\nroot = "app"\n'
        f"mounts = [{quoted}]\n{db}\n"
        '[environments.staging]\ntype = "staging"\nroot = "staging"\nmounts = ["var"]\n')
    project = ConsoleProject(base, config)
    ctx = project.context()  # the local operator: a project admin
    ctx.init_repository()
    for email, name, password in (ADMIN, VIEWER, OUTSIDER):
        users.add_user(ctx, email, name, password)
    users.set_environment_role(ctx, ADMIN[0], "develop-branch", "admin")
    users.set_environment_role(ctx, VIEWER[0], "develop-branch", "viewer")
    users.set_environment_role(ctx, VIEWER[0], "staging", "viewer")
    return project


def console_app(project: ConsoleProject) -> FastAPI:
    """An app holding only the console's router, sharing one opened Context between
    requests as ``snapkeep serve`` does (each request acts through a ``for_actor`` copy)."""
    base = project.context()
    base.catalog  # noqa: B018 - opened once, shared
    base.repository  # noqa: B018
    app = FastAPI()
    app.include_router(create_router(lambda: base))
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_projects(base: Path) -> FastAPI:
    """``shop`` and ``shop2`` (each a ``staging`` environment) on one SQLite catalog, served
    by one app (the API and the console, as ``snapkeep serve --config A --config B``).
    Ada is shop's admin and a viewer of shop2's staging; Vic has a role in shop2 only; shop
    has one backup of staging, shop2 none."""
    from snapkeep.api.app import create_app
    from snapkeep.catalog import SystemClock
    from snapkeep.policy import local_operator
    from snapkeep.services import projects
    from snapkeep.web import install
    from tests.helpers.project_files import project_on_catalog

    catalog = f"sqlite:///{base / 'catalog.db'}"
    for pid in ("shop", "shop2"):
        project_on_catalog(base / pid, pid, catalog, SystemClock()).catalog.dispose()
    shop, shop2 = projects.load_projects([str(base / "shop"), str(base / "shop2")])
    shop.actor = shop2.actor = local_operator()
    users.add_user(shop, ADMIN[0], ADMIN[1], ADMIN[2], project_role="admin")
    users.add_user(shop, VIEWER[0], VIEWER[1], VIEWER[2])
    users.set_environment_role(shop2, ADMIN[0], "staging", "viewer")
    users.set_environment_role(shop2, VIEWER[0], "staging", "viewer")
    done = operations.start_backup(shop, shop.config.environment("staging"), live=True)
    assert done.result == "success"
    app = create_app(lambda: [shop, shop2])
    install(app, lambda: shop)
    return app


@contextmanager
def serve_app(app: FastAPI, timeout: float = 30) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    web = threading.Thread(target=server.run, name="console-server", daemon=True)
    web.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not web.is_alive():
            raise AssertionError(f"the console server did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        web.join(timeout)


@contextmanager
def serve(project: ConsoleProject, workers: int = 1, timeout: float = 30) -> Iterator[str]:
    """The console served by uvicorn on a free loopback port, with worker threads running
    queued activities; yields its base URL and stops both afterwards."""
    stop = threading.Event()
    threads = start_worker_threads(project.context, workers, stop, poll_interval=0.2)
    try:
        with serve_app(console_app(project), timeout) as url:
            yield url
    finally:
        stop.set()
        for t in threads:
            t.join(timeout)


def client(project: ConsoleProject, base_url: str = "http://testserver") -> TestClient:
    return TestClient(console_app(project), base_url=base_url, follow_redirects=False)


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def post_sign_in(c: TestClient, who: tuple[str, str, str], page: str = "/signin",
                 **fields: str) -> httpx.Response:
    """The sign-in form of ``page`` submitted for ``who``, with its CSRF token and
    ``fields`` (``next``); the answer."""
    token = form_token(c.get(page).text)
    return c.post("/signin", data={"email": who[0], "password": who[2], "csrf_token": token,
                                   **fields})


def sign_in(c: TestClient, who: tuple[str, str, str]) -> str:
    """Sign ``who`` in; returns the session's CSRF token (from the sign-out form)."""
    res = post_sign_in(c, who)
    assert res.status_code == 303, res.text
    return form_token(c.get("/").text)


def signed_in(project: ConsoleProject, who: tuple[str, str, str]) -> tuple[TestClient, str]:
    """A console client of ``project`` with ``who`` signed in, and the session's CSRF token."""
    c = client(project)
    return c, sign_in(c, who)


def snapshot(project: ConsoleProject) -> str:
    """A stored backup of develop-branch, taken in-process by the local operator."""
    ctx = project.context()
    done = operations.start_backup(ctx, ctx.config.environment(ENV), live=True)
    assert done.result == "success"
    assert done.snapshot_id is not None
    return done.snapshot_id
