"""The recoverable window in a real browser (Debian's Chromium driven by Playwright): the
environment's page shows "recoverable from … to … (lag N s)" and the Restore dialog has the
"restore to a point in time" field bounded by the window (a real follower archiving a
private binlog server)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from snapkeep.services import pitr_window
from tests.helpers.binlog import binlog_server
from tests.helpers.console import ADMIN, ENV, serve, snapshot
from tests.helpers.pitr import caught_up, following, pitr_project
from tests.helpers.sql import run

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
STEP_TIMEOUT_MS = 20_000
ACTIVITY_TIMEOUT_MS = 180_000  # a bound, not a speed requirement: a hang fails here

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


@pytest.fixture
def page() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run the "
                    "browser tests (Playwright cannot download browsers here)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless"])
        context = b.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(STEP_TIMEOUT_MS)
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        yield pg
        context.close()
        b.close()
        assert errors == [], f"JavaScript errors on the console's pages: {errors}"


@pytest.fixture
def server(tmp_path):
    s = binlog_server(tmp_path / "server")
    run(s.connect(), "CREATE DATABASE shop",
        "CREATE TABLE shop.a (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    yield s
    s.stop()


def test_the_window_shows_and_the_restore_dialog_has_the_point_in_time_field(
        tmp_path, server, page):
    project = pitr_project(tmp_path / "p", server)
    ctx = project.context()
    with following(ctx):
        run(server.connect(), "INSERT INTO shop.a (v) VALUES (1)")
        sid = snapshot(project)
        run(server.connect(), "INSERT INTO shop.a (v) VALUES (2)")
        w = caught_up(ctx)
    start, end = pitr_window.iso(w.start), pitr_window.iso(w.end)
    with serve(project) as base:
        page.goto(base + "/")
        page.get_by_label("Email").fill(ADMIN[0])
        page.get_by_label("Password").fill(ADMIN[2])
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name=ENV).click()
        window = page.locator("#pitr-window")
        expect(window).to_contain_text(f"recoverable from {start} to {end} (lag ")
        page.get_by_role("button", name=f"More actions for {sid}").click()
        page.get_by_role("menuitem", name="Restore").click()
        dialog = page.get_by_role("dialog", name="Restore from backup")
        expect(dialog).to_be_visible()
        expect(dialog.locator(".pitr-window")).to_contain_text(f"recoverable from {start}")
        field = dialog.get_by_label(re.compile("Restore the database as it was at"))
        expect(field).to_be_visible()
        expect(field).to_have_attribute("type", "datetime-local")
        expect(field).to_have_attribute("min", start[:19])
        expect(field).to_have_attribute("max", end[:19])
        field.fill(end[:19])
        # Chromium drops ":00" seconds from the value it shows: compare to the minute
        expect(field).to_have_value(re.compile("^" + re.escape(end[:16])))


def _next_second() -> datetime:
    """Wait until the wall clock enters a new second and return it: binlog events carry
    whole seconds, so what is written from then on is stamped at or after it (the server
    runs on this machine's clock)."""
    start = datetime.now(UTC).replace(microsecond=0)
    while (now := datetime.now(UTC).replace(microsecond=0)) <= start:
        time.sleep(0.02)
    return now


def _values(server) -> list[int]:
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT v FROM shop.a ORDER BY v")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def test_a_time_chosen_in_the_restore_dialog_restores_the_database_as_of_then(
        tmp_path, server, page):
    project = pitr_project(tmp_path / "p", server)
    ctx = project.context()
    with following(ctx):
        run(server.connect(), "INSERT INTO shop.a (v) VALUES (1)")
        sid = snapshot(project)
        run(server.connect(), "INSERT INTO shop.a (v) VALUES (2)")
        t2 = _next_second()  # after every event of the insert of 2
        _next_second()
        run(server.connect(), "INSERT INTO shop.a (v) VALUES (3)")  # stamped after t2
        caught_up(ctx)
    assert _values(server) == [1, 2, 3]
    at = t2.strftime("%Y-%m-%dT%H:%M:%S")
    with serve(project) as base:
        page.goto(base + "/")
        page.get_by_label("Email").fill(ADMIN[0])
        page.get_by_label("Password").fill(ADMIN[2])
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name=ENV).click()
        page.get_by_role("button", name=f"More actions for {sid}").click()
        page.get_by_role("menuitem", name="Restore").click()
        dialog = page.get_by_role("dialog", name="Restore from backup")
        dialog.get_by_label(re.compile("Restore the database as it was at")).fill(at)
        dialog.get_by_role("button", name="Yes, restore").click()
        expect(page).to_have_url(re.compile(r"/activities/\w+$"))
        state = page.locator("#activity-state")
        expect(state).to_have_attribute("data-outcome", re.compile("success|failure|cancelled"),
                                        timeout=ACTIVITY_TIMEOUT_MS)
        assert state.get_attribute("data-outcome") == "success", \
            page.locator("#activity-error").inner_text()
    assert _values(server) == [1, 2]  # as of t2: the insert of 3 came after
