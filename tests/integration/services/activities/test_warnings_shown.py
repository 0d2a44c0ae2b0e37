"""An activity's warnings wherever activities are shown: ``activity:list`` (a column) and
``activity:get`` (one row each), the API's activity object, the console's feed and
activity page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from snapkeep.api.app import create_app
from snapkeep.services.activities import operations
from snapkeep.services.identity import auth, users
from tests.helpers.console import ADMIN, ConsoleProject, console_app, make_project
from tests.helpers.shop import Cli, cli_env

ENV = "develop-branch"
WARNING = "before_snapshot hook `echo no cache; exit 7` failed with exit code 7; its last " \
          "output: no cache"


@pytest.fixture
def project(tmp_path: Path) -> tuple[ConsoleProject, str, str]:
    """The console's project whose develop-branch backup warns; (project, the warned
    activity, a clean one)."""
    p = make_project(tmp_path)
    with open(p.config, "a") as f:
        f.write(f'\n[environments.{ENV}.hooks]\nbefore_snapshot = ["echo no cache; exit 7"]\n'
                'on_failure = "warn"\n')
    ctx = p.context()
    warned = operations.start_backup(ctx, ctx.config.environment(ENV), live=True)
    clean = operations.start_backup(ctx, ctx.config.environment("staging"), live=True)
    assert (warned.result, warned.warnings, clean.warnings) == ("success", (WARNING,), ())
    return p, warned.id, clean.id


def test_the_cli_lists_and_shows_warnings(project):
    p, warned, clean = project
    cli = Cli(p.base, cli_env())
    listing = cli.run("activity:list", "--config", str(p.config)).stdout
    header = next(ln for ln in listing.splitlines() if ln.startswith("| ID"))
    assert header.split("|")[-2].strip() == "Warnings"
    rows = {ln.split("|")[1].strip(): ln.split("|")[-2].strip()
            for ln in listing.splitlines() if re.match(r"\| \w{16} ", ln)}
    assert rows == {warned: "1", clean: ""}

    shown = cli.run("activity:get", warned, "--config", str(p.config)).stdout
    assert re.search(rf"\| warning +\| {re.escape(WARNING)} +\|", shown), shown
    assert cli.run("activity:get", warned, "-P", "warnings", "--config",
                   str(p.config)).stdout == WARNING + "\n"
    got = json.loads(cli.run("activity:get", clean, "--format", "json", "--config",
                             str(p.config)).stdout)
    assert got["warnings"] == []
    listed = json.loads(cli.run("activity:list", "--format", "json", "--config",
                                str(p.config)).stdout)
    assert {a["id"]: a["warnings"] for a in listed} == {warned: [WARNING], clean: []}


def test_the_api_answers_warnings_with_the_activity(project):
    p, warned, clean = project
    ctx = p.context()
    token = auth.create_token(ctx, ADMIN[0], "tests")[1]
    api = TestClient(create_app(p.context), headers={"Authorization": f"Bearer {token}"})
    assert api.get(f"/api/projects/shop/activities/{warned}").json()["warnings"] == [WARNING]
    listed = api.get("/api/projects/shop/activities?environment=develop-branch").json()
    assert [a["warnings"] for a in listed] == [[WARNING]]


def test_the_console_shows_warnings_in_the_feed_and_on_the_page(project):
    p, warned, clean = project
    users.set_environment_role(p.context(), ADMIN[0], "staging", "viewer")  # to see `clean`
    c = TestClient(console_app(p), follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/signin").text).group(1)
    assert c.post("/signin", data={"email": ADMIN[0], "password": ADMIN[2],
                                   "csrf_token": token}).status_code == 303
    feed = c.get(f"/activities?environment={ENV}").text
    assert 'class="badge warning"' in feed and ">1 warning</span>" in feed
    page = c.get(f"/activities/{warned}").text
    assert '<div id="activity-warnings" class="banner warning" >' in page
    assert "before_snapshot hook `echo no cache; exit 7` failed with exit code 7" in page
    # the banner is there for console.js to fill while an activity runs, hidden when empty
    assert '<div id="activity-warnings" class="banner warning" hidden>' in \
        c.get(f"/activities/{clean}").text
    state = c.get(f"/console/activities/{warned}.json").json()
    assert len(state["warnings"]) == 1 and "exit code 7" in state["warnings"][0]
