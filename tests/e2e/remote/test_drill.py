"""A restore drill through a server: `snapshot:verify --restore` in remote mode posts
``…/backups/{id}/verify``, the server's worker runs it, the listing shows the outcome."""

from __future__ import annotations

import json
import re

from tests.helpers.remote import Team, last_snapshot
from tests.helpers.shop import checksums


def test_a_remote_restore_drill_runs_on_the_server_and_the_listing_shows_it(
        team: Team, mariadb):
    conn = mariadb.connect(team.db)
    before = checksums(conn, team.db)
    snap = last_snapshot(team.run(team.remote(), "snapshot:create", "--live"))
    res = team.run(team.remote(), "snapshot:verify", snap, "--restore")
    assert f"Restore drill of snapshot {snap} of develop-branch" in res.stderr
    assert re.search(r"Activity \w+ succeeded", res.stderr), res.stderr
    # the log streamed from the server (rows verified by digests, or pages by their checks)
    assert "database: restored and " in res.stderr and " verified " in res.stderr
    listed = {s["id"]: s for s in json.loads(team.run(
        team.remote(), "snapshot:list", "--format", "json").stdout)}
    assert listed[snap]["verified_ok"] is True and listed[snap]["verified_at"]
    local = {s["id"]: s for s in json.loads(team.run(
        team.local(), "snapshot:list", "--format", "json").stdout)}
    assert local[snap] == listed[snap]
    assert checksums(conn, team.db) == before
    with conn.cursor() as cur:
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME "
                    "LIKE %s", (team.db + "%__sk%",))
        assert cur.fetchall() == ()
    conn.close()

    refused = team.run(team.remote("viewer"), "snapshot:verify", snap, "--restore",
                       check=False)
    assert refused.returncode == 4
    assert "you need the Admin role to run a restore drill of a snapshot" in refused.stderr
