"""The web console's routes, driven over HTTP without a browser: signing in and out, CSRF,
and refusals that come from the services (a forced form changes nothing)."""

from __future__ import annotations

import re
from pathlib import Path

from snapkeep.services.activities import operations
from snapkeep.services.activities.workers import Worker
from snapkeep.services.identity import users
from snapkeep.web.signin import SIGNIN_FAILED
from tests.helpers.console import (
    ADMIN,
    ENV,
    OUTSIDER,
    VIEWER,
    ConsoleProject,
    client,
    form_token,
    make_project,
    post_sign_in,
    sign_in,
    signed_in,
    snapshot,
)

BACKUP_BUTTON = '<button type="submit" class="primary">Backup</button>'


def activity_count(project: ConsoleProject) -> int:
    return len(project.context().catalog.list_activities(limit=1000))


def run_queued(project: ConsoleProject):
    ran = Worker(project.context()).run_once()
    assert ran is not None, "nothing was queued"
    return ran


def logo_changed_after_a_backup(project: ConsoleProject) -> tuple[str, Path]:
    """A backup of develop-branch, then its logo changed: the backup's ID and the logo."""
    sid = snapshot(project)
    logo = project.app_root / "pub" / "media" / "logo.txt"
    logo.write_text("changed after the backup\n")
    return sid, logo


# -- signing in and out ------------------------------------------------------------------------

def test_pages_send_a_signed_out_browser_to_sign_in_and_come_back_after(project):
    c = client(project)
    for path in ("/", f"/environments/{ENV}", "/activities?environment=develop-branch"):
        res = c.get(path)
        assert res.status_code == 303
        assert res.headers["location"].startswith("/signin?next=")
    assert c.get("/activities?environment=develop-branch").headers["location"] == \
        "/signin?next=/activities%3Fenvironment%3Ddevelop-branch"
    res = c.get("/console/activities/nope.json")
    assert res.status_code == 401
    assert "sign in" in res.json()["error"]


def test_a_wrong_password_and_an_unknown_email_get_the_same_generic_message(project):
    c = client(project)
    token = form_token(c.get("/signin").text)
    wrong = c.post("/signin", data={"email": ADMIN[0], "password": "not it at all",
                                    "csrf_token": token})
    unknown = c.post("/signin", data={"email": "nobody@example.com", "password": ADMIN[2],
                                      "csrf_token": token})
    for res in (wrong, unknown):
        assert res.status_code == 401
        assert SIGNIN_FAILED in res.text
        assert "snapkeep_session" not in res.headers.get("set-cookie", "")
    assert "nobody@example.com" in unknown.text  # the email is kept in the form
    assert c.get("/").status_code == 303


def test_signing_in_sets_an_httponly_lax_cookie_and_returns_to_the_page_asked_for(project):
    c = client(project)
    res = post_sign_in(c, ADMIN, "/signin?next=/activities", next="/activities")
    assert res.status_code == 303
    assert res.headers["location"] == "/activities"
    cookie = next(v for v in res.headers.get_list("set-cookie")
                  if v.startswith("snapkeep_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    page = c.get("/activities")
    assert page.status_code == 200
    assert "Signed in as <strong>Ada Admin</strong>" in page.text


def test_the_session_cookie_is_secure_when_the_console_is_served_over_https(project):
    c = client(project, base_url="https://testserver")
    res = post_sign_in(c, ADMIN)
    cookie = next(v for v in res.headers.get_list("set-cookie")
                  if v.startswith("snapkeep_session="))
    assert "Secure" in cookie
    assert c.get("/").status_code == 200


def test_sign_in_refuses_a_form_that_did_not_come_from_its_page(project):
    c = client(project)
    res = c.post("/signin", data={"email": ADMIN[0], "password": ADMIN[2],
                                  "csrf_token": "made-up"})
    assert res.status_code == 403
    assert "reload the page" in res.text
    assert "snapkeep_session" not in res.headers.get("set-cookie", "")
    assert c.get("/").status_code == 303


def test_sign_in_never_redirects_to_another_site(project):
    c = client(project)
    res = post_sign_in(c, ADMIN, next="//evil.example/x")
    assert res.headers["location"] == "/"


def test_sign_out_needs_the_csrf_token_and_then_ends_the_session(project):
    c, csrf = signed_in(project, ADMIN)
    assert c.post("/signout", data={}).status_code == 403
    assert c.get("/").status_code == 200  # still signed in
    stolen = c.cookies.get("snapkeep_session")
    res = c.post("/signout", data={"csrf_token": csrf})
    assert (res.status_code, res.headers["location"]) == (303, "/signin")
    assert c.get("/").status_code == 303
    replay = client(project)
    replay.cookies.set("snapkeep_session", stolen)
    assert replay.get("/").status_code == 303  # the old cookie is dead on the server too


# -- what each person sees ---------------------------------------------------------------------

def test_the_environments_page_lists_type_status_and_the_last_backup(project):
    sid_activity = operations.start_backup(project.context(),
                                           project.context().config.environment(ENV),
                                           live=True)
    c, _ = signed_in(project, ADMIN)
    html = c.get("/").text
    row = html[html.index(f'href="/environments/{ENV}"'):]
    row = row[:row.index("</tr>")]
    assert "Development" in row and "Active" in row
    assert f'href="/activities/{sid_activity.id}"' in row and "Success" in row
    staging = html[html.index('href="/environments/staging"'):]
    assert "No access" in staging[:staging.index("</tr>")]


def test_an_admin_sees_the_backup_button_with_its_live_and_consistent_choice(project):
    c, _ = signed_in(project, ADMIN)
    html = c.get(f"/environments/{ENV}").text
    assert BACKUP_BUTTON in html
    assert "Consistent (pauses the site briefly)" in html
    assert "Live (no pause)" in html


def test_a_viewer_sees_the_stored_backups_but_no_backup_button_and_no_restore(project):
    sid = snapshot(project)
    c, _ = signed_in(project, VIEWER)
    res = c.get(f"/environments/{ENV}")
    assert res.status_code == 200
    assert sid in res.text and "Live" in res.text
    assert BACKUP_BUTTON not in res.text
    assert "More actions for" not in res.text
    assert "Yes, restore" not in res.text


def test_someone_without_a_role_gets_a_page_saying_which_role_is_needed(project):
    c, _ = signed_in(project, OUTSIDER)
    res = c.get(f"/environments/{ENV}")
    assert res.status_code == 403
    assert "You need a different role" in res.text
    assert "you need the Viewer role to list snapshots" in res.text
    assert "Traceback" not in res.text


def test_an_unknown_environment_renders_a_readable_error(project):
    c, _ = signed_in(project, ADMIN)
    res = c.get("/environments/nope")
    assert res.status_code == 422
    assert "unknown environment &#39;nope&#39;" in res.text
    assert "develop-branch, staging" in res.text


def test_an_unknown_activity_says_where_to_look(project):
    c, _ = signed_in(project, ADMIN)
    res = c.get("/activities/nope")
    assert res.status_code == 404
    assert "Not found" in res.text and "activity nope does not exist" in res.text
    assert c.get("/console/activities/nope.json").status_code == 404


def test_the_feed_shows_only_environments_the_person_may_read(project):
    snapshot(project)
    admin, outsider = client(project), client(project)
    sign_in(admin, ADMIN)
    sign_in(outsider, OUTSIDER)
    assert "created a backup of develop-branch" in admin.get("/activities").text
    assert "created a backup of develop-branch" not in outsider.get("/activities").text
    filtered = admin.get("/activities?environment=staging")
    assert filtered.status_code == 403
    assert "you need the Viewer role to read activities" in filtered.text


def test_pro_staging_explains_its_automatic_backups_and_refuses_a_forced_one(tmp_path):
    project = make_project(tmp_path, plan="pro")
    users.set_environment_role(project.context(), ADMIN[0], "staging", "admin")
    c, csrf = signed_in(project, ADMIN)
    html = c.get("/environments/staging").text
    assert "backed up automatically every hour" in html
    assert BACKUP_BUTTON not in html
    res = c.post("/environments/staging/backups", data={"csrf_token": csrf})
    assert res.status_code == 409
    assert "manual snapshots do not apply" in res.text
    assert activity_count(project) == 0
    assert BACKUP_BUTTON in c.get(f"/environments/{ENV}").text  # development still may


# -- forms: CSRF and refusals by the services --------------------------------------------------

def test_a_backup_post_without_or_with_a_wrong_csrf_token_is_refused_and_queues_nothing(project):
    c, _ = signed_in(project, ADMIN)
    for data in ({"mode": "live"}, {"mode": "live", "csrf_token": "not-the-token"}):
        res = c.post(f"/environments/{ENV}/backups", data=data)
        assert res.status_code == 403
        assert "did not come from this console" in res.text
    assert activity_count(project) == 0


def test_a_restore_post_without_the_csrf_token_is_refused_and_restores_nothing(project):
    sid, logo = logo_changed_after_a_backup(project)
    c, _ = signed_in(project, ADMIN)
    before = activity_count(project)
    res = c.post(f"/environments/{ENV}/backups/{sid}/restore", data={"csrf_token": "x"})
    assert res.status_code == 403
    assert activity_count(project) == before
    assert logo.read_text() == "changed after the backup\n"


def test_a_viewer_forcing_backup_and_restore_forms_is_refused_by_the_service(project):
    sid = snapshot(project)
    c = client(project)
    csrf = sign_in(c, VIEWER)  # a valid session and token: only the role is missing
    before = activity_count(project)
    backup = c.post(f"/environments/{ENV}/backups", data={"csrf_token": csrf})
    assert backup.status_code == 403
    assert "Vic Viewer has the viewer role on environment develop-branch; you need the " \
        "Admin role to create a snapshot" in backup.text
    confirm = c.get(f"/environments/{ENV}/backups/{sid}/restore")
    assert confirm.status_code == 403 and "Yes, restore" not in confirm.text
    restore = c.post(f"/environments/{ENV}/backups/{sid}/restore", data={"csrf_token": csrf})
    assert restore.status_code == 403
    assert "you need the Admin role to restore a snapshot" in restore.text
    assert activity_count(project) == before
    assert [s.id for s in project.context().catalog.list_snapshots(ENV)] == [sid]


def test_a_signed_out_form_post_goes_to_sign_in_and_changes_nothing(project):
    res = client(project).post(f"/environments/{ENV}/backups", data={"csrf_token": "x"})
    assert res.status_code == 303
    assert res.headers["location"].startswith("/signin")
    assert activity_count(project) == 0


def test_an_admin_backup_is_queued_run_by_a_worker_and_listed_in_stored(project):
    c, csrf = signed_in(project, ADMIN)
    res = c.post(f"/environments/{ENV}/backups", data={"csrf_token": csrf, "mode": "live"})
    assert res.status_code == 303
    activity_id = res.headers["location"].removeprefix("/activities/")
    queued = project.context().catalog.get_activity(activity_id)
    assert (queued.state, queued.parameters["live"], queued.actor) == \
        ("pending", True, "Ada Admin")  # queued as the signed-in person, not the server
    page = c.get(f"/activities/{activity_id}")
    assert page.status_code == 200 and "Queued" in page.text
    ran = run_queued(project)
    assert (ran.id, ran.result) == (activity_id, "success")
    state = c.get(f"/console/activities/{activity_id}.json").json()
    assert (state["done"], state["outcome"], state["completion_percent"]) == \
        (True, "success", 100)
    assert state["snapshot_id"] == ran.snapshot_id
    assert state["log"], "the log lines come with the state"
    later = c.get(f"/console/activities/{activity_id}.json",
                  params={"after": state["log"][-1]["id"]}).json()
    assert later["log"] == []
    for after in ("99999999999999999999", "-1"):  # not a line id: refused, no traceback
        assert c.get(f"/console/activities/{activity_id}.json",
                     params={"after": after}).status_code == 422
    stored = c.get(f"/environments/{ENV}").text
    assert ran.snapshot_id in stored
    assert f'aria-label="More actions for {ran.snapshot_id}"' in stored
    assert '<span class="badge live">Live</span>' in stored


def test_a_second_backup_while_one_is_queued_shows_the_busy_message(project):
    c, csrf = signed_in(project, ADMIN)
    assert c.post(f"/environments/{ENV}/backups", data={"csrf_token": csrf}).status_code == 303
    res = c.post(f"/environments/{ENV}/backups", data={"csrf_token": csrf})
    assert res.status_code == 409
    assert "That did not work" in res.text and "Traceback" not in res.text
    assert activity_count(project) == 1


def test_an_unknown_backup_mode_is_refused_with_the_choices(project):
    c, csrf = signed_in(project, ADMIN)
    res = c.post(f"/environments/{ENV}/backups", data={"csrf_token": csrf, "mode": "fast"})
    assert res.status_code == 422
    assert "choose consistent or live" in res.text
    assert activity_count(project) == 0


def test_an_admin_restores_a_backup_through_the_confirmation(project):
    sid, logo = logo_changed_after_a_backup(project)
    c, csrf = signed_in(project, ADMIN)
    stored = c.get(f"/environments/{ENV}").text
    assert "Restore from backup" in stored and "Yes, restore" in stored
    confirm = c.get(f"/environments/{ENV}/backups/{sid}/restore")  # the page without JS
    assert confirm.status_code == 200
    assert "Restore from backup" in confirm.text and "Code is not touched" in confirm.text
    res = c.post(f"/environments/{ENV}/backups/{sid}/restore", data={"csrf_token": csrf})
    assert res.status_code == 303
    assert project.context().catalog.get_activity(
        res.headers["location"].removeprefix("/activities/")).state == "pending"
    ran = run_queued(project)
    assert (ran.type, ran.result) == ("environment.restore", "success")
    assert logo.read_text() == "the shop's logo\n"


def test_pages_forbid_framing_and_foreign_scripts_and_static_files_are_served(project):
    c = client(project)
    page = c.get("/signin")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text  # everything lives in console.js
    js = c.get("/console/static/console.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert "function follow" in js.text
    assert c.get("/console/static/console.css").headers["content-type"].startswith("text/css")
    assert c.get("/console/static/..%2Fsession.py").status_code == 404


def test_a_restore_form_restores_only_the_part_it_names(project):
    sid, logo = logo_changed_after_a_backup(project)
    note = project.app_root / "var" / "note.txt"
    note.write_text("written after the backup\n")
    c, csrf = signed_in(project, ADMIN)
    assert 'value="mount:pub/media"' in c.get(f"/environments/{ENV}").text
    res = c.post(f"/environments/{ENV}/backups/{sid}/restore",
                 data={"csrf_token": csrf, "part": "mount:pub/media"})
    assert res.status_code == 303
    ran = run_queued(project)
    assert ran.result == "success"
    assert ran.parameters["scope"] == {"database": False, "mounts": ["pub/media"],
                                       "tables": None}
    assert logo.read_text() == "the shop's logo\n"
    assert note.read_text() == "written after the backup\n"  # var was not restored


def test_an_admin_of_both_restores_into_another_environment_naming_both(project):
    (project.app_root / "var" / "from-develop.txt").write_text("develop's var\n")
    sid = snapshot(project)
    staging_var = project.base / "staging" / "var"
    (staging_var / "staging-only.txt").write_text("staging's own\n")
    users.set_environment_role(project.context(), ADMIN[0], "staging", "admin")
    c, csrf = signed_in(project, ADMIN)
    stored = c.get(f"/environments/{ENV}").text
    assert f"/backups/{sid}/restore-into" in stored
    pick = c.get(f"/environments/{ENV}/backups/{sid}/restore-into")
    assert pick.status_code == 200 and '<option value="staging">' in pick.text
    confirm = c.get(f"/environments/{ENV}/backups/{sid}/restore", params={"target": "staging"})
    assert confirm.status_code == 200
    assert "This replaces the data of <strong>staging</strong> with the snapshot" in confirm.text
    assert f"of <strong>{ENV}</strong>" in confirm.text
    res = c.post(f"/environments/{ENV}/backups/{sid}/restore",
                 data={"csrf_token": csrf, "target": "staging", "part": "mount:var"})
    assert res.status_code == 303
    ran = run_queued(project)
    assert (ran.environment, ran.result) == ("staging", "success")
    assert ran.description == f"Ada Admin restored staging from backup {sid} of {ENV} " \
        "(only mount var)"
    assert (staging_var / "from-develop.txt").read_text() == "develop's var\n"
    assert not (staging_var / "staging-only.txt").exists()


def test_a_viewer_of_the_target_cannot_restore_into_it(project):
    sid = snapshot(project)
    users.set_environment_role(project.context(), VIEWER[0], ENV, "admin")  # admin of source
    c = client(project)
    csrf = sign_in(c, VIEWER)  # still only a viewer of staging
    before = activity_count(project)
    pick = c.get(f"/environments/{ENV}/backups/{sid}/restore-into")
    assert pick.status_code == 403
    confirm = c.get(f"/environments/{ENV}/backups/{sid}/restore", params={"target": "staging"})
    assert confirm.status_code == 403 and "Yes, restore" not in confirm.text
    res = c.post(f"/environments/{ENV}/backups/{sid}/restore",
                 data={"csrf_token": csrf, "target": "staging", "part": "mount:var"})
    assert res.status_code == 403
    assert "viewer role on environment staging" in res.text
    assert activity_count(project) == before


def test_an_admin_downloads_a_mount_of_a_backup_and_a_viewer_cannot(project):
    import io
    import tarfile

    import zstandard

    sid = snapshot(project)
    c, _ = signed_in(project, ADMIN)
    stored = c.get(f"/environments/{ENV}").text
    url = f"/environments/{ENV}/backups/{sid}/export/mounts/pub/media.tar.zst"
    assert f'href="{url}"' in stored
    res = c.get(url)
    assert res.status_code == 200, res.text
    assert f'filename="{sid}-pub-media.tar.zst"' in res.headers["content-disposition"]
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(res.content)).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        names = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        logo = tar.extractfile(names["logo.txt"])
        assert logo is not None and logo.read() == b"the shop's logo\n"
    done = project.context().catalog.list_activities(ENV, limit=1)[0]
    assert (done.type, done.result) == ("environment.backup.export", "success")
    assert c.get(f"/environments/{ENV}/backups/{sid}/export/mounts/nope.tar.zst") \
        .status_code == 404

    viewer = client(project)
    sign_in(viewer, VIEWER)
    assert url not in viewer.get(f"/environments/{ENV}").text
    refused = viewer.get(url)
    assert refused.status_code == 403 and "Admin role" in refused.text


def test_a_viewer_of_the_source_is_offered_no_restore_into_their_own_environment(project):
    """Vic is Admin of staging but only Viewer of develop-branch: restoring develop-branch
    there would let him export its data, so the console offers it nowhere (#13 item 5)."""
    sid = snapshot(project)
    users.set_environment_role(project.context(), VIEWER[0], "staging", "admin")
    c, csrf = signed_in(project, VIEWER)
    assert f"/backups/{sid}/restore-into" not in c.get(f"/environments/{ENV}").text
    pick = c.get(f"/environments/{ENV}/backups/{sid}/restore-into")
    assert pick.status_code == 403 and "Admin role to restore its snapshots" in pick.text
    confirm = c.get(f"/environments/{ENV}/backups/{sid}/restore", params={"target": "staging"})
    assert confirm.status_code == 403 and "Yes, restore" not in confirm.text
    before = activity_count(project)
    res = c.post(f"/environments/{ENV}/backups/{sid}/restore",
                 data={"csrf_token": csrf, "target": "staging", "part": "mount:var"})
    assert res.status_code == 403
    assert activity_count(project) == before


# -- favicon, pagination, Delete and Cancel (#13 item 16) -----------------------------------------

def test_the_console_has_a_favicon(project):
    c, _ = signed_in(project, ADMIN)
    assert '<link rel="icon" href="/console/static/favicon.svg"' in c.get("/").text
    icon = c.get("/console/static/favicon.svg")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.text.startswith("<svg")
    legacy = c.get("/favicon.ico")
    assert legacy.status_code == 301
    assert legacy.headers["location"] == "/console/static/favicon.svg"


def rows(html: str) -> list[str]:
    return re.findall(r'<tr data-snapshot="(\w+)"', html)


def feed_rows(html: str) -> list[str]:
    return re.findall(r'<th scope="row"><a href="/activities/(\w+)"', html)


def test_long_lists_of_backups_and_activities_come_in_pages_of_50(project):
    from snapkeep.web.views import PAGE_SIZE

    taken = [snapshot(project) for _ in range(PAGE_SIZE + 1)]
    c, _ = signed_in(project, ADMIN)
    first = c.get(f"/environments/{ENV}").text
    assert rows(first) == taken[::-1][:PAGE_SIZE]
    assert f'<a rel="next" href="/environments/{ENV}?page=2">Older →</a>' in first
    assert 'rel="prev"' not in first
    second = c.get(f"/environments/{ENV}?page=2").text
    assert rows(second) == [taken[0]]
    assert f'<a rel="prev" href="/environments/{ENV}?page=1">← Newer</a>' in second
    assert 'rel="next"' not in second

    acts = [a.id for a in project.context().catalog.list_activities(ENV, limit=1000)]
    assert len(acts) == PAGE_SIZE + 1
    for url in (f"/activities?environment={ENV}", "/activities"):
        page1 = c.get(url).text
        assert feed_rows(page1) == acts[:PAGE_SIZE]
        sep = "&amp;" if "?" in url else "?"
        assert f'<a rel="next" href="{url}{sep}page=2">Older →</a>' in page1
        assert feed_rows(c.get(f"{url}{sep.replace('&amp;', '&')}page=2").text) == acts[PAGE_SIZE:]


def test_an_admin_deletes_a_backup_after_confirming_and_a_viewer_cannot(project):
    sid, kept = snapshot(project), snapshot(project)
    viewer = client(project)
    vcsrf = sign_in(viewer, VIEWER)
    assert "Delete…" not in viewer.get(f"/environments/{ENV}").text
    assert viewer.get(f"/environments/{ENV}/backups/{sid}/delete").status_code == 403
    before = activity_count(project)
    refused = viewer.post(f"/environments/{ENV}/backups/{sid}/delete",
                          data={"csrf_token": vcsrf})
    assert refused.status_code == 403 and "Admin role to delete a snapshot" in refused.text
    assert activity_count(project) == before

    c, csrf = signed_in(project, ADMIN)
    page = c.get(f"/environments/{ENV}").text
    assert f'href="/environments/{ENV}/backups/{sid}/delete" data-dialog="delete-{sid}"' in page
    confirm = c.get(f"/environments/{ENV}/backups/{sid}/delete")
    assert confirm.status_code == 200 and "Yes, delete" in confirm.text
    assert c.post(f"/environments/{ENV}/backups/{sid}/delete").status_code == 403  # no CSRF
    assert activity_count(project) == before
    res = c.post(f"/environments/{ENV}/backups/{sid}/delete", data={"csrf_token": csrf})
    assert res.status_code == 303 and res.headers["location"].startswith("/activities/")
    ran = run_queued(project)
    assert (ran.type, ran.result) == ("environment.backup.delete", "success")
    assert rows(c.get(f"/environments/{ENV}").text) == [kept]


def test_an_admin_cancels_a_queued_activity_and_a_viewer_sees_no_cancel(project):
    c, csrf = signed_in(project, ADMIN)
    queued = c.post(f"/environments/{ENV}/backups", data={"csrf_token": csrf, "mode": "live"})
    url = queued.headers["location"]
    viewer = client(project)
    vcsrf = sign_in(viewer, VIEWER)
    assert 'id="activity-cancel"' not in viewer.get(url).text
    refused = viewer.post(f"{url}/cancel", data={"csrf_token": vcsrf})
    assert refused.status_code == 403 and "Admin role to cancel an activity" in refused.text
    assert 'id="activity-cancel"' in c.get(url).text
    assert c.post(f"{url}/cancel").status_code == 403  # no CSRF token
    res = c.post(f"{url}/cancel", data={"csrf_token": csrf})
    assert res.status_code == 303 and res.headers["location"] == url
    after = c.get(url).text
    assert 'data-outcome="cancelled"' in after and 'id="activity-cancel"' not in after
    a = project.context().catalog.get_activity(url.rsplit("/", 1)[1])
    assert a is not None and a.state == "cancelled"
