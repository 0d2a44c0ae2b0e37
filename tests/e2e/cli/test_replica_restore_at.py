"""``snapshot:restore --at TIME --from NAME`` from a replica alone (docs/offsite.md): the
scenario of test_restore_at (a private MariaDB writing a binlog, a running
``binlog:follow``, snapshots S1 and S2, T2 noted between writes, the archive caught up),
copied to a replica on a local directory, then the primary repository deleted."""

from __future__ import annotations

import re
import shutil

from tests.e2e.cli.test_restore_at import (  # noqa: F401 - scenario: the fixture
    _next_second,
    _restore,
    _state,
    _wait_archived,
    scenario,
)
from tests.helpers.dbstate import assert_same
from tests.helpers.sql import run

REPLICA = "offsite"


def test_restore_at_t2_from_a_replica_after_the_primary_is_gone(scenario):  # noqa: F811
    server, cli, t2 = scenario["server"], scenario["cli"], scenario["t2"]
    root = cli.cwd
    with open(root / "snapkeep.toml", "a") as f:
        f.write(f'\n[replicas.{REPLICA}]\nlocation = "{root.parent / "offsite-disk"}"\n')
    cli.run("replica:init", REPLICA)

    res = cli.run("snapshot:copy", "-e", "production", "--all", "--to", REPLICA)
    out = res.stdout + res.stderr
    assert out.count("Copied backup ") == 2
    m = re.search(r"Copied (\d+) binlog records of production to replica offsite "
                  r"\((\d+) segments\): (\d+) chunks sent", out)
    assert m and int(m.group(1)) >= int(m.group(2)) > 0, out
    again = cli.run("snapshot:copy", "-e", "production", "--all", "--to", REPLICA)
    assert "holds every snapshot" in again.stdout + again.stderr  # binlog records too

    # later writes, archived: --all copies the binlog records alone
    run(server.connect(), "INSERT INTO shop.orders (v) VALUES (501), (502)")
    t4 = _next_second()
    state4 = _state(server)
    run(server.connect(), "INSERT INTO shop.orders (v) VALUES (503)")
    _wait_archived(scenario["tmp_path"], server)
    res = cli.run("snapshot:copy", "-e", "production", "--all", "--to", REPLICA)
    out = res.stdout + res.stderr
    assert "Copied backup " not in out and \
        re.search(r"Copied \d+ binlog records of production to replica offsite", out), out

    shutil.rmtree(root / "repo")  # the primary is gone
    run(server.connect(), "DROP DATABASE shop")
    at = t2.strftime("%Y-%m-%dT%H:%M:%SZ")
    res = _restore(cli, "--at", at, "--from", REPLICA)
    out = res.stdout + res.stderr
    assert f"base snapshot {scenario['s2']}" in out and "Replayed" in out
    assert_same(_state(server), scenario["state2"], "--at T2 --from offsite")
    _restore(cli, "--at", t4.strftime("%Y-%m-%dT%H:%M:%SZ"), "--from", REPLICA)
    assert_same(_state(server), state4, "--at T4 --from offsite")

    # a point past the replica's archive is refused, naming its window
    late = cli.run("snapshot:restore", "-e", "production", "--yes", "--from", REPLICA,
                   "--at", "2099-01-01T00:00:00Z", check=False)
    assert late.returncode != 0 and "recoverable from" in late.stderr
