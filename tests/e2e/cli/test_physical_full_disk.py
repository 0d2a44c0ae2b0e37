"""A live physical snapshot whose work directory's disk fills up (docs/physical.md, "Temporary
disk"): mariadb-backup fails, the snapshot fails with one line saying what failed, that
the disk is full, what it needs and what to do; nothing is listed, the work directory is
emptied, the live database and the shop are as they were."""

from __future__ import annotations

import json

from tests.helpers.dbstate import db_state
from tests.helpers.shop import Cli


def _listing(cli: Cli) -> list[dict]:
    return json.loads(cli.run("snapshot:list", "--format", "json").stdout)


def test_a_full_work_disk_fails_the_physical_snapshot_in_one_line(shop, mariadb, tiny_disk):
    cli, root, db = shop
    conn = mariadb.connect(db)
    with conn.cursor() as cur:  # more InnoDB data than the 3 MiB disk holds
        cur.execute("CREATE TABLE bulk (id INT PRIMARY KEY, pad VARCHAR(255)) ENGINE=InnoDB")
        cur.execute("INSERT INTO bulk SELECT seq, REPEAT('x', 255) FROM seq_1_to_20000")
    conn.commit()
    before = db_state(conn, db)
    (root / ".snapkeep" / "physical").symlink_to(tiny_disk)  # the work directories' disk
    res = cli.run("snapshot:create", "--live", check=False)  # not live: no work directory
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("snapkeep: ")]
    assert res.returncode == 6 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert len(err) == 1, res.stderr[-3000:]
    line = err[0]
    assert "mariadb-backup --backup of" in line and "is full" in line, line
    assert f"work directory {root / '.snapkeep' / 'physical' / 'develop-branch'}" in line, line
    assert "it needs about" in line and 'set engine = "logical"' in line, line
    assert _listing(cli) == []
    assert not any(p.is_file() for p in tiny_disk.rglob("*"))  # the work files removed
    assert db_state(conn, db) == before
    assert not (root / "var" / ".maintenance.flag").exists()  # the shop never paused
    # the default snapshot (writes held) reads the tablespaces in place: the tiny work disk
    # does not matter to it
    res = cli.run("snapshot:create")
    assert "flushed for export and read in place" in res.stdout + res.stderr
    assert len(_listing(cli)) == 1
