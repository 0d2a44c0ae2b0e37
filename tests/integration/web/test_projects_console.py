"""The console of a server of two projects (#19): it opens on the first project the
person has a role in, switches between the projects they have a role in (and no other),
acts with their roles in the project shown, and refuses a form shown in one project once
the browser has switched to another (two projects' ``staging`` are different
environments)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.helpers.console import ADMIN, VIEWER, form_token, post_sign_in, two_projects

BACKUP_BUTTON = '<button type="submit" class="primary">Backup</button>'


def test_the_switcher_shows_and_switches_to_the_projects_one_has_a_role_in(tmp_path):
    c = TestClient(two_projects(tmp_path), follow_redirects=False)
    assert post_sign_in(c, ADMIN).status_code == 303
    home = c.get("/").text
    assert '<option value="shop" selected>' in home and '<option value="shop2" >' in home
    shop_token = form_token(home)
    staging = c.get("/environments/staging").text
    assert "No backups are stored" not in staging  # shop's staging has one
    assert BACKUP_BUTTON in staging  # Ada is shop's admin

    r = c.post("/project", data={"project": "shop2", "csrf_token": shop_token})
    assert r.status_code == 303 and r.headers["location"] == "/"
    home = c.get("/").text
    assert '<option value="shop2" selected>' in home
    assert "No backups are stored for staging" in c.get("/environments/staging").text
    # Ada only views shop2's staging: no backup button there
    assert BACKUP_BUTTON not in c.get("/environments/staging").text
    # the form shown in shop is refused in shop2
    r = c.post("/environments/staging/backups", data={"csrf_token": shop_token})
    assert r.status_code == 403 and "reload the page" in r.text

    r = c.post("/project", data={"project": "nope", "csrf_token": form_token(home)})
    assert r.status_code == 404


def test_one_with_a_role_in_one_project_sees_no_switcher(tmp_path):
    c = TestClient(two_projects(tmp_path), follow_redirects=False)
    assert post_sign_in(c, VIEWER).status_code == 303
    home = c.get("/").text
    assert 'action="/project"' not in home
    assert "Project <strong>shop2</strong>" in home  # the one Vic has a role in
    r = c.post("/project", data={"project": "shop", "csrf_token": form_token(home)})
    assert r.status_code == 404
