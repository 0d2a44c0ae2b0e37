"""A real ``snapkeep serve`` process for API and remote-CLI tests, and a project for it.

``Server`` starts ``snapkeep serve --port 0`` (the port it picked is read from its first
line), waits (bounded) until ``/api/health`` answers, and stops it with SIGTERM.
``TeamProject`` writes a project with three environments — the shop (git, mounts, a
MariaDB database), ``held`` (whose consistent backups hold in their pause until
``release()``) and ``dormant`` (inactive) — plus one user and token per role.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from snapkeep.config import load_config
from snapkeep.services.context import Context
from snapkeep.services.identity import auth, users
from tests.helpers.shop import Cli, cli_env, create_database, fill_database, make_app_root

START_TIMEOUT = 60.0
STOP_TIMEOUT = 90.0
ROLES = ("viewer", "contributor", "env_admin", "project_admin")


def wait_for(cond: Callable[[], Any], what: str, timeout: float = 120.0,
             interval: float = 0.05) -> Any:
    """Poll ``cond`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Server:
    """``snapkeep serve`` for ``config`` on a loopback port of its choosing."""

    def __init__(self, config: Path, out_dir: Path, *args: str,
                 env: dict[str, str] | None = None) -> None:
        self.out = out_dir / "serve.out"
        self.err = out_dir / "serve.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "snapkeep", "serve", "--config", str(config),
                 "--port", "0", *args], env=env or cli_env(), stdout=out, stderr=err,
                cwd=config.parent)
        try:
            first = wait_for(self._serving_line, "snapkeep serve to print its address",
                             START_TIMEOUT)
            # a server on every address is reached (by the tests) on loopback only
            self.url = re.search(r"on (http://\S+?:\d+)", first).group(1) \
                .replace("//0.0.0.0:", "//127.0.0.1:")
            wait_for(self._healthy, f"{self.url}/api/health to answer", START_TIMEOUT)
        except BaseException:
            self.kill()
            raise

    def _serving_line(self) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"snapkeep serve exited {self.proc.returncode}:\n{self.log()}")
        return next((ln for ln in self.err.read_text().splitlines()
                     if ln.startswith("Serving project")), None)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.err.read_text() + self.out.read_text()

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then wait (bounded) for the process to end; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"snapkeep serve did not stop within {timeout:.0f} s of "
                                 f"SIGTERM:\n{self.log()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


class TeamProject:
    """A project for a server: environments ``develop-branch`` (the shop, with a MariaDB
    database when ``database_url`` is given), ``held`` and ``dormant``; a token per role
    in ``tokens``."""

    SHOP = "develop-branch"

    def __init__(self, base: Path, database_url: str | None,
                 catalog: str | None = None) -> None:
        self.base = base
        self.release_file = base / "RELEASE"
        shop = base / "shop"
        shop.mkdir()
        make_app_root(shop)
        text = ['[project]\nid = "team"\nplan = "starter"\n' +
                (f'catalog = "{catalog}"\n' if catalog else ""),
                '[repository]\nkey_file = ".snapkeep/repository.key"\n',
                f'[environments.{self.SHOP}]\nroot = "shop"\n'
                'mounts = ["var", "pub/media", "app/etc"]\n' +
                (f'database = "{database_url}"\n' if database_url else "")]
        pause = ("touch var/.maintenance.flag; "
                 f"while [ ! -e {self.release_file} ]; do sleep 0.02; done")
        for env in ("held", "dormant"):
            (base / env / "data").mkdir(parents=True)
            (base / env / "var").mkdir()
            (base / env / "data" / "f.txt").write_text(f"{env}\n")
            text.append(f'[environments.{env}]\nroot = "{env}"\nmounts = ["data"]\n'
                        f"pause_command = '{pause}'\n"
                        "resume_command = 'rm -f var/.maintenance.flag'\n")
        self.config = base / "snapkeep.toml"
        self.config.write_text("\n".join(text))
        self.ctx = Context(load_config(str(self.config)))
        self.ctx.init_repository()
        self.ctx.catalog.set_environment_status("dormant", "inactive")
        self.tokens = self._people()

    def _people(self) -> dict[str, str]:
        tokens: dict[str, str] = {}
        envs = (self.SHOP, "held", "dormant")
        for role, project_role, env_role in (("viewer", None, "viewer"),
                                             ("contributor", None, "contributor"),
                                             ("env_admin", None, "admin"),
                                             ("project_admin", "admin", None),
                                             ("revoked", "admin", None)):
            email = f"{role.replace('_', '-')}@example.com"
            users.add_user(self.ctx, email, role.replace("_", " ").title(),
                           project_role=project_role)
            for env in envs:
                if env_role:
                    users.set_environment_role(self.ctx, email, env, env_role)
            tokens[role] = auth.create_token(self.ctx, email, "tests")[1]
        auth.revoke_token(self.ctx, tokens["revoked"])
        return tokens

    def release(self) -> None:
        self.release_file.touch()

    def hold(self) -> None:
        self.release_file.unlink(missing_ok=True)

    def paused(self, env: str) -> bool:
        return (self.base / env / "var" / ".maintenance.flag").exists()

    def fingerprint(self) -> dict[str, Any]:
        """What a refused request must not change: snapshots (catalog and repository),
        activities with their state and log, environment status, users and roles."""
        cat = self.ctx.catalog
        acts = cat.list_activities(limit=10_000)
        return {
            "catalog_snapshots": sorted(cat.snapshot_ids()),
            "repository_snapshots": sorted(self.ctx.repository.snapshot_ids()),
            "activities": sorted((a.id, a.state, a.result, bool(a.cancel_requested))
                                 for a in acts),
            "log_lines": {a.id: len(cat.log_lines(a.id)) for a in acts},
            "status": {e: cat.environment_status(e) for e in ("develop-branch", "held",
                                                              "dormant")},
            "users": sorted((u.email, u.project_role) for u in cat.list_users()),
            "roles": sorted((k, sorted(v.items()))
                            for k, v in cat.all_environment_roles().items()),
        }


@dataclass
class CliProject:
    """A shop project made through the CLI for a server's tests (``cli_project``)."""

    root: Path
    db: str
    home: Path  # XDG_CONFIG_HOME of its CLI runs
    cli: Cli
    tokens: dict[str, str]  # "admin" and "viewer" on the environment


@dataclass
class ServerTeam:
    """A ``cli_project`` served by a ``Server``: its CLI run locally or against the server."""

    root: Path
    db: str
    server: Server
    tokens: dict[str, str]
    home: Path  # XDG_CONFIG_HOME of every command: no stored login leaks in or out

    def local(self) -> Cli:
        return Cli(self.root, {**cli_env(), "XDG_CONFIG_HOME": str(self.home)})

    def remote(self, who: str = "admin", cwd: Path | None = None) -> Cli:
        return Cli(cwd or self.root, {**cli_env(), "XDG_CONFIG_HOME": str(self.home),
                                      "SNAPKEEP_URL": self.server.url,
                                      "SNAPKEEP_TOKEN": self.tokens[who]})


def cli_project(base: Path, mariadb, env: str, *, big_file_mb: int = 0) -> CliProject:
    """``base/shop`` with the three mounts and a new MariaDB database, initialised by the
    CLI, with an admin and a viewer of ``env`` and a token each (drop ``db`` after)."""
    root = base / "shop"
    root.mkdir()
    make_app_root(root, big_file_mb=big_file_mb)
    db = new_mysql_database(mariadb)
    home = base / "config-home"
    home.mkdir()
    cli = Cli(root, {**cli_env(), "XDG_CONFIG_HOME": str(home)})
    cli.run("init", "--project-id", "shop", "--database", mariadb.url(db))
    tokens = {}
    for who in ("admin", "viewer"):
        cli.run("user:add", f"{who}@example.com", "--name", who.title())
        cli.run("user:role", f"{who}@example.com", env, who)
        tokens[who] = cli.run("auth:token:create", "--user", f"{who}@example.com").stdout \
            .strip().splitlines()[-1]
    return CliProject(root, db, home, cli, tokens)


@contextmanager
def served_project(base: Path, mariadb, env: str) -> Iterator[tuple[CliProject, Server]]:
    """``cli_project(base, mariadb, env)`` and a ``snapkeep serve --no-scheduler`` of it;
    afterwards the server is stopped and the project's database dropped."""
    p = cli_project(base, mariadb, env)
    server = Server(p.root / "snapkeep.toml", base, "--no-scheduler")
    try:
        yield p, server
    finally:
        server.terminate()
        drop_mysql_database(mariadb, p.db)


def new_mysql_database(mariadb) -> str:
    """A new database on the session's MariaDB server, filled with the shop's data."""
    name = f"api_{os.getpid()}_{secrets.token_hex(3)}"
    create_database(mariadb, name)
    fill_database(mariadb, name)
    return name


def drop_mysql_database(mariadb, name: str) -> None:
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def ndjson(lines: Iterator[str]) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in lines if ln.strip()]


def wait_activity(http: httpx.Client, activity: dict[str, Any],
                  timeout: float = 180.0) -> dict[str, Any]:
    """Poll the activity (through the API) until it has ended; it, as it ended."""
    def ended() -> dict[str, Any] | None:
        a = http.get(activity["links"]["self"]).json()
        return a if a["state"] in ("complete", "cancelled") else None
    return wait_for(ended, f"activity {activity['id']} to end", timeout, interval=0.2)
