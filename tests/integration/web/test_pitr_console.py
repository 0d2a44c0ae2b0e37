"""The console's recoverable window: shown on the environment's page and in the Restore
dialog, whose "restore to a point in time" field reaches the restore activity as ``at``
(a real follower archiving a private binlog server)."""

from __future__ import annotations

import html

import pytest

from snapkeep.catalog import Activity
from snapkeep.services import pitr_window
from snapkeep.services.activities.info import RESTORE
from tests.helpers.binlog import binlog_server
from tests.helpers.console import ADMIN, ENV, signed_in, snapshot
from tests.helpers.pitr import caught_up, following, pitr_project
from tests.helpers.sql import run


@pytest.fixture
def server(tmp_path):
    s = binlog_server(tmp_path / "server")
    run(s.connect(), "CREATE DATABASE shop",
        "CREATE TABLE shop.a (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    yield s
    s.stop()


def test_the_window_is_shown_and_the_time_chosen_goes_to_the_restore_as_at(tmp_path, server):
    project = pitr_project(tmp_path / "p", server)
    ctx = project.context()
    with following(ctx):
        run(server.connect(), "INSERT INTO shop.a (v) VALUES (1)")
        sid = snapshot(project)
        run(server.connect(), "INSERT INTO shop.a (v) VALUES (2)")
        w = caught_up(ctx)
    c, csrf = signed_in(project, ADMIN)
    page = html.unescape(c.get(f"/environments/{ENV}").text)
    assert w.describe() in page and "recoverable from " in w.describe()
    assert 'name="at"' in page and f'min="{pitr_window.iso(w.start)[:19]}"' in page
    confirm = html.unescape(c.get(f"/environments/{ENV}/backups/{sid}/restore").text)
    assert "Restore to a point in time" in confirm and w.describe() in confirm
    assert f'max="{pitr_window.iso(w.end)[:19]}"' in confirm
    at = pitr_window.iso(w.end)[:19]  # as the browser sends a datetime-local value
    res = c.post(f"/environments/{ENV}/backups/{sid}/restore",
                 data={"csrf_token": csrf, "part": "database", "at": at},
                 follow_redirects=False)
    assert res.status_code == 303, res.text
    restore = _latest_restore(project)
    assert restore.parameters["at"] == at + "Z" and restore.state == "pending"
    assert restore.description.endswith(f"as of {at}Z")


def test_a_restore_without_a_time_passes_no_at(tmp_path, server):
    project = pitr_project(tmp_path / "p", server)
    sid = snapshot(project)
    c, csrf = signed_in(project, ADMIN)
    page = html.unescape(c.get(f"/environments/{ENV}").text)
    assert "not recoverable to a point in time yet" in page  # nothing archived
    res = c.post(f"/environments/{ENV}/backups/{sid}/restore",
                 data={"csrf_token": csrf, "part": "database", "at": ""},
                 follow_redirects=False)
    assert res.status_code == 303
    assert _latest_restore(project).parameters["at"] is None


def _latest_restore(project) -> Activity:
    ctx = project.context()
    rows = ctx.catalog.list_activities(ENV, types=(RESTORE,), limit=1)
    assert rows
    return rows[0]
