"""The web console in a real browser (Debian's Chromium driven by Playwright) against a
served console, worker threads, a real MariaDB database and real mounts.

A screenshot of each page visited is kept under test-output/console/<test>/ (gitignored).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snapkeep.services.activities import operations
from tests.helpers.console import (
    ADMIN,
    VIEWER,
    ConsoleProject,
    make_project,
    serve,
    serve_app,
    two_projects,
)
from tests.helpers.shop import fill, make_app_root

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parents[3] / "test-output" / "console"
ENV = "develop-branch"
ACTIVITY_TIMEOUT_MS = 180_000  # a bound, not a speed requirement: a hang fails here
STEP_TIMEOUT_MS = 20_000

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run the "
                    "browser tests (Playwright cannot download browsers here)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless"])
        yield b
        b.close()


@pytest.fixture
def shop(tmp_path: Path, mariadb, fresh_db) -> ConsoleProject:
    """The sample shop (code in git, Magento mounts, a filled database) as a console
    project: Ada is Admin and Vic Viewer on develop-branch."""
    make_app_root(tmp_path / "app")
    conn = mariadb.connect(fresh_db)
    try:
        fill(conn, products=200, orders=100)
    finally:
        conn.close()
    release = tmp_path / "RELEASE"
    # A consistent backup holds in its pause until the test creates RELEASE (at most
    # ~2 minutes, then the pause fails): that shows the running state without timing.
    pause = (f"touch var/.maintenance.flag; for i in $(seq 2400); do "
             f"[ -e {release} ] && exit 0; sleep 0.05; done; exit 1")
    return make_project(tmp_path, database=mariadb.url(fresh_db),
                        mounts=("var", "pub/media", "app/etc"), pause_command=pause,
                        resume_command="rm -f var/.maintenance.flag")


def wait_until(cond: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def release_pause(shop: ConsoleProject) -> None:
    (shop.base / "RELEASE").touch()


class Shots:
    """Numbered full-page screenshots in this test's output directory."""

    def __init__(self, page, name: str) -> None:
        self.page = page
        self.dir = OUTPUT / name
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.n = 0

    def __call__(self, what: str) -> Path:
        self.n += 1
        path = self.dir / f"{self.n:02d}-{what}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def page(browser, request) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p
    context.close()
    assert errors == [], f"JavaScript errors on the console's pages: {errors}"


def sign_in(page, base: str, who: tuple[str, str, str], shot: Shots) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/signin\?next=/$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot("sign-in")
    page.get_by_label("Email").fill(who[0])
    page.get_by_label("Password").fill(who[2])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Environments")).to_be_visible()
    expect(page.get_by_text(f"Signed in as {who[1]}")).to_be_visible()
    shot("environments")


def wait_for_success(page) -> None:
    state = page.locator("#activity-state")
    expect(state).to_have_attribute("data-outcome", re.compile("success|failure|cancelled"),
                                    timeout=ACTIVITY_TIMEOUT_MS)
    error = page.locator("#activity-error")
    assert state.get_attribute("data-outcome") == "success", error.inner_text()
    expect(page.locator("#activity-progress")).to_have_attribute("value", "100")
    expect(page.locator("#activity-done")).to_be_visible()


def customer(shop_db: tuple, entity_id: int) -> str:
    mariadb, db = shop_db
    conn = mariadb.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT customer_name FROM sales_order WHERE entity_id=%s", (entity_id,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_an_admin_backs_up_and_restores_through_the_console(shop, page, mariadb, fresh_db):
    shot = Shots(page, "admin-backup-and-restore")
    db = (mariadb, fresh_db)
    original = customer(db, 1)
    with serve(shop) as base:
        sign_in(page, base, ADMIN, shot)
        page.get_by_role("link", name=ENV).click()
        expect(page.get_by_role("heading", name="Backups")).to_be_visible()
        expect(page.get_by_text(f"No backups are stored for {ENV} yet.")).to_be_visible()
        shot("backups-empty")

        page.get_by_label("Consistent (pauses the site briefly)").check()
        page.get_by_role("button", name="Backup", exact=True).click()
        expect(page).to_have_url(re.compile(r"/activities/\w+$"))
        page.evaluate("window.stillTheSamePage = true")
        # The backup is held in its pause: the page shows it running, the site paused.
        expect(page.locator("#activity-state")).to_have_attribute("data-outcome", "running",
                                                                  timeout=ACTIVITY_TIMEOUT_MS)
        wait_until(lambda: (shop.app_root / "var" / ".maintenance.flag").exists(),
                   "the site to be paused")
        shot("backup-activity-running")
        release_pause(shop)
        wait_for_success(page)
        assert page.evaluate("window.stillTheSamePage === true"), \
            "the activity page reloaded instead of updating itself"
        expect(page.locator("#activity-log")).to_contain_text(f"Resumed {ENV}")
        expect(page.locator("#activity-log li").first).to_be_visible()
        sid = page.locator("#activity-snapshot").inner_text().strip()
        assert re.fullmatch(r"[0-9a-z]{16}", sid), sid
        shot("backup-activity-succeeded")

        page.get_by_role("link", name=f"See the backups of {ENV}").click()
        row = page.locator(f"tr[data-snapshot='{sid}']")
        expect(row).to_be_visible()
        expect(row).to_contain_text("Yes")
        expect(row.locator(".badge.live")).to_have_count(0)  # consistent, not live
        shot("backups-stored")
        assert not (shop.app_root / "var" / ".maintenance.flag").exists()  # resumed

        # Change what the restore must bring back: a row, and a file in a mount.
        conn = mariadb.connect(fresh_db)
        try:
            with conn.cursor() as cur:
                cur.execute("UPDATE sales_order SET customer_name='changed' WHERE entity_id=1")
            conn.commit()
        finally:
            conn.close()
        env_php = shop.app_root / "app" / "etc" / "env.php"
        env_php.write_text("<?php return ['db' => 'changed'];\n")
        assert customer(db, 1) == "changed"

        page.get_by_role("button", name=f"More actions for {sid}").click()
        restore_item = page.get_by_role("menuitem", name="Restore")
        expect(restore_item).to_be_visible()
        shot("more-menu")
        restore_item.click()
        dialog = page.get_by_role("dialog", name="Restore from backup")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("replaces the database and mounts")
        expect(dialog).to_contain_text("Code is not touched")
        expect(dialog.get_by_role("button", name="Cancel")).to_be_visible()
        shot("restore-confirmation")
        dialog.get_by_role("button", name="Yes, restore").click()

        expect(page).to_have_url(re.compile(r"/activities/\w+$"))
        expect(page.get_by_role("heading", name=f"Restore of {ENV}")).to_be_visible()
        wait_for_success(page)
        shot("restore-activity-succeeded")

    assert customer(db, 1) == original
    assert env_php.read_text() == "<?php return ['db' => 'x'];\n"


def test_a_viewer_finds_no_backup_button_and_no_restore_entry(shop, page):
    release_pause(shop)
    ctx = shop.context()
    done = operations.start_backup(ctx, ctx.config.environment(ENV), live=True)
    assert done.result == "success"
    shot = Shots(page, "viewer")
    with serve(shop) as base:
        sign_in(page, base, VIEWER, shot)
        page.get_by_role("link", name=ENV).click()
        row = page.locator(f"tr[data-snapshot='{done.snapshot_id}']")
        expect(row).to_be_visible()
        expect(row.locator(".badge.live")).to_have_text("Live")
        expect(page.get_by_text("Taking and restoring them needs the Admin role")).to_be_visible()
        shot("backups-as-viewer")
        expect(page.get_by_role("button", name="Backup", exact=True)).to_have_count(0)
        expect(page.get_by_role("button", name=re.compile("^More actions for"))).to_have_count(0)
        expect(page.get_by_role("menuitem", name="Restore")).to_have_count(0)
        expect(page.get_by_text("Yes, restore")).to_have_count(0)

        page.get_by_role("link", name="Activities").click()
        expect(page.get_by_role("link", name="Backup", exact=True)).to_have_count(1)
        shot("activities-as-viewer")


# -- favicon, a phone's width, pages, Delete and Cancel (#13 item 16) -----------------------------

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def small(tmp_path: Path) -> ConsoleProject:
    """A project without a database (backups take milliseconds) whose consistent backups
    hold in their pause until RELEASE exists, as ``shop``'s do."""
    release = tmp_path / "RELEASE"
    pause = (f"touch var/.maintenance.flag; for i in $(seq 2400); do "
             f"[ -e {release} ] && exit 0; sleep 0.05; done; exit 1")
    return make_project(tmp_path, pause_command=pause,
                        resume_command="rm -f var/.maintenance.flag")


def backups(project: ConsoleProject, n: int) -> list[str]:
    ctx = project.context()
    env = ctx.config.environment(ENV)
    return [operations.start_backup(ctx, env, live=True).snapshot_id for _ in range(n)]


def no_sideways_scroll(page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"


def inside_the_window(locator, width: int) -> None:
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box


def test_the_favicon_is_served_and_the_backups_work_at_a_phones_width(small, browser):
    sid = backups(small, 3)[-1]
    context = browser.new_context(viewport=PHONE)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
    shot = Shots(page, "phone")
    try:
        with serve(small) as base:
            sign_in(page, base, ADMIN, shot)
            icon = page.locator("link[rel='icon']").get_attribute("href")
            assert icon == "/console/static/favicon.svg"
            served = page.request.get(base + icon)
            assert served.status == 200 and served.headers["content-type"] == "image/svg+xml"
            assert page.request.get(base + "/favicon.ico").status == 200  # via the redirect
            no_sideways_scroll(page)

            page.get_by_role("link", name=ENV).click()
            expect(page.locator(f"tr[data-snapshot='{sid}']")).to_be_visible()
            shot("backups-at-390px")
            no_sideways_scroll(page)
            more = page.get_by_role("button", name=f"More actions for {sid}")
            inside_the_window(more, PHONE["width"])
            more.click()
            restore_item = page.get_by_role("menuitem", name="Restore", exact=True)
            expect(restore_item).to_be_visible()
            inside_the_window(restore_item, PHONE["width"])
            shot("more-menu-at-390px")
            no_sideways_scroll(page)
            restore_item.click()
            dialog = page.get_by_role("dialog", name="Restore from backup")
            expect(dialog).to_be_visible()
            inside_the_window(dialog, PHONE["width"])
            shot("restore-dialog-at-390px")
            dialog.get_by_role("button", name="Cancel").click()
            expect(dialog).to_be_hidden()

            page.get_by_role("link", name="Activities").click()
            expect(page.get_by_role("heading", name="Activities")).to_be_visible()
            shot("activities-at-390px")
            no_sideways_scroll(page)
        assert missing == [], f"answered with an error: {missing}"
    finally:
        context.close()


def test_long_lists_come_in_pages(small, page):
    from snapkeep.web.views import PAGE_SIZE

    taken = backups(small, PAGE_SIZE + 1)
    shot = Shots(page, "pages")
    with serve(small) as base:
        sign_in(page, base, ADMIN, shot)
        page.get_by_role("link", name=ENV).click()
        expect(page.locator("tr[data-snapshot]")).to_have_count(PAGE_SIZE)
        expect(page.locator(f"tr[data-snapshot='{taken[0]}']")).to_have_count(0)
        page.get_by_role("link", name="Older →").click()
        expect(page.locator("tr[data-snapshot]")).to_have_count(1)
        expect(page.locator(f"tr[data-snapshot='{taken[0]}']")).to_be_visible()
        shot("backups-page-2")
        page.get_by_role("link", name="← Newer").click()
        expect(page.locator("tr[data-snapshot]")).to_have_count(PAGE_SIZE)

        page.get_by_role("link", name="Activities").click()
        expect(page.locator("table.list tbody tr")).to_have_count(PAGE_SIZE)
        page.get_by_role("link", name="Older →").click()
        expect(page.locator("table.list tbody tr")).to_have_count(1)
        shot("activities-page-2")


def test_an_admin_deletes_a_backup_and_cancels_a_running_one_and_a_viewer_cannot(
        small, page, browser):
    sid, kept = backups(small, 2)
    shot = Shots(page, "delete-and-cancel")
    viewer_context = browser.new_context(viewport={"width": 1280, "height": 900})
    viewer_context.set_default_timeout(STEP_TIMEOUT_MS)
    viewer = viewer_context.new_page()
    try:
        with serve(small) as base:
            sign_in(viewer, base, VIEWER, Shots(viewer, "delete-and-cancel-viewer"))
            viewer.goto(f"{base}/environments/{ENV}")
            expect(viewer.locator(f"tr[data-snapshot='{sid}']")).to_be_visible()
            expect(viewer.get_by_role("menuitem", name="Delete…")).to_have_count(0)
            expect(viewer.get_by_text("Yes, delete")).to_have_count(0)

            sign_in(page, base, ADMIN, shot)
            page.get_by_role("link", name=ENV).click()
            page.get_by_role("button", name=f"More actions for {sid}").click()
            page.get_by_role("menuitem", name="Delete…").click()
            dialog = page.get_by_role("dialog", name="Delete backup")
            expect(dialog).to_be_visible()
            expect(dialog).to_contain_text(sid)
            shot("delete-confirmation")
            dialog.get_by_role("button", name="Yes, delete").click()
            expect(page.get_by_role("heading", name=f"Delete backup of {ENV}")).to_be_visible()
            wait_for_success(page)
            page.get_by_role("link", name=f"See the backups of {ENV}").click()
            expect(page.locator(f"tr[data-snapshot='{kept}']")).to_be_visible()
            expect(page.locator(f"tr[data-snapshot='{sid}']")).to_have_count(0)
            shot("deleted")

            # A consistent backup holds in its pause: running, so it can be cancelled.
            page.get_by_label("Consistent (pauses the site briefly)").check()
            page.get_by_role("button", name="Backup", exact=True).click()
            expect(page.locator("#activity-state")).to_have_attribute(
                "data-outcome", "running", timeout=ACTIVITY_TIMEOUT_MS)
            viewer.goto(page.url)
            expect(viewer.locator("#activity-state")).to_have_attribute("data-outcome",
                                                                        "running")
            expect(viewer.get_by_role("button", name="Cancel")).to_have_count(0)
            cancel = page.get_by_role("button", name="Cancel", exact=True)
            expect(cancel).to_be_visible()
            shot("running-with-cancel")
            cancel.click()
            expect(page.get_by_role("button", name="Cancel asked for")).to_be_disabled()
            expect(page.locator("#activity-log")).to_contain_text("asked to cancel")
            release_pause(small)
            expect(page.locator("#activity-state")).to_have_attribute(
                "data-outcome", "cancelled", timeout=ACTIVITY_TIMEOUT_MS)
            expect(page.locator("#activity-cancel")).to_be_hidden()
            shot("cancelled")
    finally:
        viewer_context.close()
    assert not (small.app_root / "var" / ".maintenance.flag").exists()


def test_the_project_switcher_of_a_server_of_two_projects(tmp_path, page):
    """Two projects on one catalog behind one server: Ada signs in to the first, sees its
    staging's backup, switches to shop2 with the switcher and sees shop2's staging, which
    has none (and where she only views)."""
    shot = Shots(page, "project-switcher")
    with serve_app(two_projects(tmp_path)) as base:
        sign_in(page, base, ADMIN, shot)
        switcher = page.get_by_label("Project")
        expect(switcher).to_have_value("shop")
        page.goto(base + "/environments/staging")
        expect(page.locator("table tbody tr")).to_have_count(1)
        expect(page.get_by_role("button", name="Backup")).to_be_visible()
        shot("shop-staging")

        page.get_by_label("Project").select_option("shop2")
        page.get_by_role("button", name="Switch").click()
        expect(page.get_by_role("heading", name="Environments")).to_be_visible()
        expect(page.get_by_label("Project")).to_have_value("shop2")
        page.goto(base + "/environments/staging")
        expect(page.get_by_text("No backups are stored for staging yet.")).to_be_visible()
        expect(page.get_by_role("button", name="Backup")).to_have_count(0)
        shot("shop2-staging")
