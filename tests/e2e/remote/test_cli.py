"""The CLI in remote mode: with SNAPKEEP_URL and SNAPKEEP_TOKEN (or `auth:login`) the
snapshot and activity commands talk to a real `snapkeep serve` and print what local mode
prints; the server's refusals come out as one line with the local exit code."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
from pathlib import Path

import pytest

from snapkeep.cli.remote_client import RemoteClient
from tests.helpers.remote import Team, last_snapshot
from tests.helpers.shop import Cli, checksums, cli_env


def transcript(res) -> tuple[list[str], list[str], str]:
    """(the shape of snapshot:create's stderr with IDs, description and numbers blanked and
    the activity's log lines folded into one <LOG>, those log lines, the activity ID)."""
    lines = res.stderr.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Waiting for the activity"))
    activity = re.match(r"Waiting for the activity (\w+) ", lines[start]).group(1)
    bar = next(i for i, ln in enumerate(lines) if re.match(r"\[=+\] \d+ secs", ln))
    assert lines[start + 1] == ""
    body = lines[start + 2:bar]
    shape = [*lines[:start], "Waiting for the activity <ID> (<DESCRIPTION>):", "", "<LOG>",
             re.sub(r"\d+ secs", "<N> secs", lines[bar]),
             *[ln.replace(activity, "<ID>") for ln in lines[bar + 1:]]]
    return shape, body, activity


def test_snapshot_create_remote_prints_the_local_transcript_and_list_shows_it(team: Team):
    remote = team.run(team.remote(), "snapshot:create")
    snap = last_snapshot(remote)
    local = team.run(team.local(), "snapshot:create")
    shape, body, activity = transcript(remote)
    assert shape == transcript(local)[0] == [
        "Creating a snapshot of develop-branch",
        "Waiting for the activity <ID> (<DESCRIPTION>):", "", "<LOG>",
        "[============================] <N> secs (complete)",
        "Activity <ID> succeeded"]
    assert f"Waiting for the activity {activity} (Admin created a backup of develop-branch)" \
        in remote.stderr
    # The bar followed the activity's log stream: every line, in order, nothing else.
    assert body == team.run(team.remote(), "activity:log", activity).stdout.splitlines()
    assert f"Created backup {snap}" in " ".join(body)
    assert "Paused develop-branch (var/.maintenance.flag)" in body

    listing = team.run(team.remote(), "snapshot:list")
    assert "Snapshots on the project (shop), environment develop-branch " \
           "(type: development):" in listing.stderr
    assert any(snap in ln and ln.rstrip().endswith("| true       |")
               for ln in listing.stdout.splitlines())


@pytest.mark.parametrize("args", [
    ("snapshot:list",),
    ("snapshot:list", "--format", "json"),
    ("snapshot:list", "--format", "csv", "--columns", "id,live,automated,size,added,status"),
    ("activity:list", "--format", "json"),
    ("activity:list", "-e", "develop-branch"),
])
def test_reading_commands_print_exactly_what_local_mode_prints(team: Team, args):
    if not json.loads(team.run(team.local(), "snapshot:list", "--format", "json").stdout):
        team.run(team.local(), "snapshot:create", "--live")
    remote, local = team.run(team.remote(), *args), team.run(team.local(), *args)
    assert (remote.stdout, remote.stderr) == (local.stdout, local.stderr)


def test_snapshot_get_and_activity_log_print_exactly_what_local_mode_prints(team: Team):
    snap = last_snapshot(team.run(team.local(), "snapshot:create", "--live"))
    activity = json.loads(team.run(team.local(), "activity:list", "--format", "json").stdout)[0]
    for args in (("snapshot:get", snap), ("snapshot:get", snap, "--format", "json"),
                 ("snapshot:get", snap, "-P", "live"), ("activity:log", activity["id"], "-t"),
                 ("activity:get", activity["id"], "--format", "json")):
        remote, local = team.run(team.remote(), *args), team.run(team.local(), *args)
        assert remote.stdout == local.stdout, args


def test_a_viewer_token_is_refused_with_the_403_message_and_exit_code_4(team: Team):
    team.run(team.local(), "snapshot:create", "--live")  # an activity and a snapshot of its own
    before = team.run(team.local(), "snapshot:list", "--format", "json").stdout
    acts = team.run(team.local(), "activity:list", "--format", "json").stdout
    for args in (("snapshot:create",), ("snapshot:restore", "--yes"),
                 ("activity:cancel", json.loads(acts)[0]["id"])):
        res = team.run(team.remote("viewer"), *args, check=False)
        assert res.returncode == 4, (args, res.stderr)
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("snapkeep:")]
        assert len(errors) == 1, res.stderr
        assert re.match(r"snapkeep: Viewer has the viewer role on environment develop-branch; "
                        r"you need the Admin role to \w+ (a snapshot|an activity)\. Ask a "
                        r"project admin to grant it\.$", errors[0]), errors[0]
    assert team.run(team.local(), "snapshot:list", "--format", "json").stdout == before
    assert team.run(team.local(), "activity:list", "--format", "json").stdout == acts
    # reading is allowed
    assert team.run(team.remote("viewer"), "snapshot:list", "--format", "json").stdout == before


def test_a_remote_restore_brings_the_data_back_and_delete_removes_the_snapshot(team: Team,
                                                                               mariadb):
    conn = mariadb.connect(team.db)
    before = checksums(conn, team.db)
    snap = last_snapshot(team.run(team.remote(), "snapshot:create", "--live"))
    with conn.cursor() as cur:
        cur.execute("DELETE FROM sales_order WHERE entity_id % 3 = 0")
    res = team.run(team.remote(), "snapshot:restore", snap, "--yes")
    assert f"Restoring snapshot {snap} of develop-branch" in res.stderr
    assert "The database and the mounts (" in res.stderr and "will be replaced" in res.stderr
    assert re.search(r"Activity \w+ succeeded", res.stderr)
    assert checksums(conn, team.db) == before
    conn.close()

    team.run(team.remote(), "snapshot:delete", snap)
    listed = json.loads(team.run(team.remote(), "snapshot:list", "--format", "json").stdout)
    assert snap not in [s["id"] for s in listed]
    gone = team.run(team.remote(), "snapshot:get", snap, check=False)
    assert gone.returncode == 3 and f"snapshot {snap} does not exist" in gone.stderr


def test_no_wait_returns_the_activity_id_and_the_server_runs_it(team: Team):
    res = team.run(team.remote(), "snapshot:create", "--live", "-W")
    activity = res.stdout.strip().splitlines()[-1]
    assert f"follow it with `snapkeep activity:log {activity}`" in res.stderr
    log = team.run(team.remote(), "activity:log", activity).stdout  # follows to the end
    assert "Created backup" in log
    got = json.loads(team.run(team.remote(), "activity:get", activity, "--format",
                              "json").stdout)
    assert (got["state"], got["result"]) == ("complete", "success")


def test_the_client_reports_progress_from_the_stream(team: Team):
    seen: list[tuple[str, object]] = []

    class Recorder:
        def on_start(self, a) -> None:
            seen.append(("start", a.state))

        def on_log(self, message: str) -> None:
            seen.append(("log", message))

        def on_progress(self, percent: float) -> None:
            seen.append(("progress", percent))

    client = RemoteClient(team.server.url, team.tokens["admin"])
    done = client.create_snapshot("develop-branch", live=True, threads=None, wait=True,
                                  observer=Recorder())
    assert done.result == "success" and done.snapshot_id
    assert seen[0] == ("start", "pending")
    percents = [v for k, v in seen if k == "progress"]
    assert percents and percents == sorted(percents)
    assert ("log", "Creating backup of develop-branch") in seen


def test_an_unreachable_server_is_one_line_naming_it_with_exit_code_6(team: Team):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
        cli = Cli(team.root, {**cli_env(), "XDG_CONFIG_HOME": str(team.home),
                              "SNAPKEEP_URL": url, "SNAPKEEP_TOKEN": team.tokens["admin"]})
        res = team.run(cli, "snapshot:list", check=False, timeout=60)
    assert res.returncode == 6
    assert res.stderr.strip().startswith(f"snapkeep: cannot reach the snapkeep server at {url}")
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_wrong_token_is_refused_with_exit_code_4(team: Team):
    cli = team.remote()
    cli.env["SNAPKEEP_TOKEN"] = "sk_not-a-real-token"
    res = team.run(cli, "snapshot:list", check=False)
    assert res.returncode == 4 and "the API token is not valid here" in res.stderr
    assert "sk_not-a-real-token" not in res.stdout + res.stderr


def test_auth_login_stores_the_token_for_the_user_only_and_logout_forgets_it(team: Team,
                                                                             tmp_path: Path):
    home = tmp_path / "config"
    elsewhere = tmp_path / "laptop"  # no snapkeep.toml: local mode would fail here
    elsewhere.mkdir()
    cli = Cli(elsewhere, {**cli_env(), "XDG_CONFIG_HOME": str(home)})
    bad = team.run(cli, "auth:login", "--url", team.server.url, "--token-stdin",
                   stdin="sk_wrong\n", check=False)
    assert bad.returncode == 4 and not (home / "snapkeep" / "credentials.json").exists()

    res = team.run(cli, "auth:login", "--url", team.server.url + "/", "--token-stdin",
                   stdin=team.tokens["viewer"] + "\n")
    assert f"Logged in to {team.server.url} as viewer@example.com (project shop)" in res.stderr
    stored = home / "snapkeep" / "credentials.json"
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600
    assert json.loads(stored.read_text()) == {"url": team.server.url,
                                              "token": team.tokens["viewer"]}

    listed = team.run(cli, "snapshot:list", "-e", "develop-branch", "--format", "json")
    assert listed.stdout == team.run(team.local(), "snapshot:list", "--format", "json").stdout

    out = team.run(cli, "auth:logout")
    assert f"Logged out of {team.server.url}" in out.stderr and not stored.exists()
    local = team.run(cli, "snapshot:list", check=False)
    assert local.returncode == 2 and "no snapkeep.toml found" in local.stderr


def test_a_remote_partial_restore_sends_its_parts_and_restores_only_them(team: Team, mariadb):
    remote = team.remote()
    sid = last_snapshot(team.run(remote, "snapshot:create", "--live"))
    log = team.root / "var" / "log" / "system.log"
    log.write_text("changed remotely\n")
    conn = mariadb.connect(team.db)
    before = checksums(conn, team.db)
    with conn.cursor() as cur:
        cur.execute("UPDATE store SET name = 'changed'")
    conn.commit()
    res = team.run(remote, "snapshot:restore", sid, "--yes", "--mount", "var")
    assert "Mount var will be replaced with the snapshot's contents" in res.stderr
    assert "Everything else in develop-branch stays as it is." in res.stderr
    assert log.read_text() == "started\n"
    assert checksums(conn, team.db)["store"] != before["store"]  # the database was not named
    res = team.run(remote, "snapshot:restore", sid, "--yes", "--table", "store")
    assert checksums(conn, team.db) == before
    conn.close()
    refused = team.run(remote, "snapshot:restore", sid, "--yes", "--table", "nope",
                       check=False)
    assert refused.returncode == 3 and "has no table nope" in refused.stderr


def test_a_remote_restore_at_sends_the_point_and_is_refused_by_the_server_in_one_line(
        team: Team):
    """``--at`` over the API (``"at"`` in the body; no ID: the base is chosen by the
    server, ``auto``): this environment is not archived, so the server refuses it."""
    remote = team.remote()
    res = team.run(remote, "snapshot:restore", "--yes", "--at", "2026-12-05T10:19:59Z",
                   check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "point_in_time = true" in res.stderr
    res = team.run(remote, "snapshot:restore", "--yes", "--at", "whenever", check=False)
    assert res.returncode == 2 and "neither a time nor a GTID" in res.stderr
