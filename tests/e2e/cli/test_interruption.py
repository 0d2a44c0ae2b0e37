"""Processes killed with SIGKILL part-way never leave a listed snapshot, a paused shop or a
half-restored environment."""

from __future__ import annotations

import json
import os
import signal
import time
from functools import partial
from pathlib import Path

import pytest

from tests.helpers import server
from tests.helpers.shop import checksums, live_backup, tree
from tests.helpers.sql import run

BIG_MB = 200


# polled often: a process is killed at the moment a wait sees what it waits for
wait_for = partial(server.wait_for, timeout=60, interval=0.01)


def chunk_count(root: Path) -> int:
    return sum(1 for p in (root / ".snapkeep" / "repository" / "data").rglob("*") if p.is_file())


@pytest.fixture
def big_shop(shop):
    cli, root, db = shop
    media = root / "pub" / "media"
    with open(media / "big.bin", "wb") as f:
        for _ in range(BIG_MB):
            f.write(os.urandom(1 << 20))  # incompressible, so packs fill up
    return cli, root, db


def test_a_snapshot_killed_part_way_is_not_listed_and_the_pause_is_lifted(big_shop):
    cli, root, _db = big_shop
    flag = root / "var" / ".maintenance.flag"
    start_chunks = chunk_count(root)
    proc = cli.popen("snapshot:create")
    wait_for(lambda: flag.exists() and chunk_count(root) > start_chunks + 2,
             "the snapshot to be paused and writing")
    proc.kill()
    proc.wait()
    # The guard lifts the pause straight away, without another command.
    wait_for(lambda: not flag.exists(), "the guard to lift the pause", timeout=30)
    assert json.loads(cli.run("snapshot:list", "--format", "json").stdout) == []
    acts = json.loads(cli.run("activity:list", "--format", "json").stdout)
    assert acts[0]["state"] == "complete" and acts[0]["result"] == "failure"
    assert "interrupted" in acts[0]["error"]
    # The repository is consistent, the environment usable again at once, and the data
    # the killed snapshot wrote is reclaimed by prune.
    assert "no problems found" in cli.run("repository:check", "--read-data").stderr
    res = cli.run("snapshot:create")
    assert "Snapshot name:" in res.stdout
    pruned = cli.run("repository:prune").stderr
    assert "orphan" in pruned and " 0 orphan" not in pruned
    assert "no problems found" in cli.run("repository:check", "--read-data").stderr


def test_the_next_command_lifts_a_pause_whose_guard_is_gone_too(big_shop):
    cli, root, _db = big_shop
    flag = root / "var" / ".maintenance.flag"
    proc = cli.popen("snapshot:create")
    wait_for(flag.exists, "the pause")
    # Kill the command and its guard together.
    guards = [p for p in Path("/proc").iterdir() if p.name.isdigit()
              and b"snapkeep.worker.guard" in _cmdline(p)]
    for g in guards:
        os.kill(int(g.name), signal.SIGKILL)
    proc.kill()
    proc.wait()
    time.sleep(0.5)
    assert flag.exists()  # nobody lifted it yet
    cli.run("activity:list")
    assert not flag.exists()


def _cmdline(p: Path) -> bytes:
    try:
        return (p / "cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.parametrize(("engine", "crash_at"), [
    ("logical", "mysql.loading"),  # rows loading into the shadow
    ("physical", "mysql.physical.importing"),  # pages placed, not yet imported
])
def test_a_restore_killed_part_way_leaves_database_and_mounts_as_they_were(
        big_shop, mariadb, engine, crash_at):
    cli, root, db = big_shop
    cfg, section = root / "snapkeep.toml", "[environments.develop-branch]\n"
    assert section in cfg.read_text()
    cfg.write_text(cfg.read_text().replace(section, f'{section}engine = "{engine}"\n', 1))
    snap = live_backup(cli)
    conn = mariadb.connect(db)
    run(conn, "DELETE FROM sales_order WHERE entity_id < 50",
        "CREATE TABLE added_later (id INT PRIMARY KEY)")
    (root / "pub" / "media" / "big.bin").write_bytes(b"replaced")
    (root / "var" / "log" / "system.log").write_text("after the snapshot\n")
    db_before = checksums(conn, db)
    files_before = {m: tree(root / m) for m in ("var", "pub/media", "app/etc")}

    # killed where the mounts are staged and the database's shadow is loading
    cli.env["SNAPKEEP_CRASH_AT"] = crash_at
    proc = cli.popen("snapshot:restore", snap, "--yes")
    proc.communicate(timeout=600)
    del cli.env["SNAPKEEP_CRASH_AT"]
    assert proc.returncode == -signal.SIGKILL
    assert any(p.name.startswith(".media.snapkeep-staging") for p in (root / "pub").iterdir())

    assert checksums(conn, db) == db_before
    assert {m: tree(root / m) for m in ("var", "pub/media", "app/etc")} == files_before

    # The next command finds the restore's process gone and removes its staging copies.
    cli.run("activity:list")
    assert not [p for p in root.rglob("*") if "snapkeep-staging" in p.name]
    # The next restore completes.
    cli.run("snapshot:restore", snap, "--yes")
    assert not [p for p in (root / "pub").iterdir() if "snapkeep" in p.name]
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        assert not [d for (d,) in cur.fetchall() if d != db and d.startswith(db)]
        cur.execute("SELECT COUNT(*) FROM sales_order WHERE entity_id < 50")
        assert cur.fetchone()[0] == 49
    assert (root / "pub" / "media" / "big.bin").stat().st_size == BIG_MB << 20
    conn.close()


def test_a_damaged_snapshot_stops_the_restore_before_anything_is_touched(shop, mariadb):
    cli, root, db = shop
    snap = live_backup(cli)
    conn = mariadb.connect(db)
    run(conn, "UPDATE catalog_product_entity SET sku = 'changed'")
    # Live files equal to the snapshot's are linked, not read from the repository: change
    # them, so the restore needs every file's content (and meets the damage).
    for p in (root / "pub" / "media").rglob("*"):
        if p.is_file():
            with open(p, "ab") as f:
                f.write(b"changed")
    db_before = checksums(conn, db)
    files_before = tree(root / "pub" / "media")
    chunks = sorted(p for p in (root / ".snapkeep" / "repository" / "data").rglob("*")
                    if p.is_file())
    for p in chunks:  # damage every pack in its middle: whichever is read first fails
        raw = bytearray(p.read_bytes())
        raw[len(raw) // 2] ^= 0x55
        p.write_bytes(bytes(raw))
    res = cli.run("snapshot:restore", snap, "--yes", check=False)
    assert res.returncode != 0
    assert f"snapshot {snap} is damaged" in res.stderr and "nothing in develop-branch" in res.stderr
    assert checksums(conn, db) == db_before
    assert tree(root / "pub" / "media") == files_before
    conn.close()


@pytest.mark.parametrize("crash_at", ["restore.after-swap-2", "restore.after-swap-4",
                                      "volumes.rechecked",
                                      "mysql.after-rename",
                                      "mysql.objects-half"])
def test_a_restore_killed_inside_the_cutover_leaves_everything_old(shop, mariadb, crash_at):
    """Mounts swap first, the database last: killed after two mounts, after the first
    mount's linked unchanged files were checked again (paused, before its swap), or inside
    the database's own swap (after its RENAME TABLE), everything goes back to the old
    data."""
    cli, root, db = shop
    snap = live_backup(cli)
    conn = mariadb.connect(db)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM sales_order WHERE entity_id < 30")
    (root / "var" / "log" / "system.log").write_text("after the snapshot\n")
    (root / "pub" / "media" / "added.jpg").write_bytes(b"added")
    db_before = checksums(conn, db)
    files_before = {m: tree(root / m) for m in ("var", "pub/media", "app/etc")}

    cli.env["SNAPKEEP_CRASH_AT"] = crash_at
    res = cli.run("snapshot:restore", snap, "--yes", check=False)
    assert res.returncode == -signal.SIGKILL
    del cli.env["SNAPKEEP_CRASH_AT"]

    # The pause guard (or else the next command) settles the cut-over at once.
    wait_for(lambda: json.loads(cli.run("activity:list", "--format", "json").stdout)[0][
        "result"] == "failure", "the interrupted restore to be settled", timeout=60)
    assert checksums(conn, db) == db_before
    assert {m: tree(root / m) for m in ("var", "pub/media", "app/etc")} == files_before
    assert not [p for p in root.rglob("*") if "snapkeep-" in p.name]
    assert not (root / "var" / ".maintenance.flag").exists()
    cli.run("snapshot:restore", snap, "--yes")
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM sales_order WHERE entity_id < 30")
        assert cur.fetchone()[0] == 29
    conn.close()


def test_a_restore_killed_after_its_commit_point_is_completed_and_reported_succeeded(
        shop, mariadb):
    """Killed once every part was swapped in (the journal says so), the restore is rolled
    forward: it is recorded as succeeded, with a warning saying how, names its snapshot,
    and its after_restore hooks run (#13 item 9)."""
    cli, root, db = shop
    with open(root / "snapkeep.toml", "a") as f:
        f.write('\n[environments.develop-branch.hooks]\n'
                'after_restore = ["echo \\"$SNAPKEEP_SNAPSHOT_ID\\" > hook-ran.txt"]\n')
    snap = live_backup(cli)
    conn = mariadb.connect(db)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM sales_order WHERE entity_id < 30")
    (root / "pub" / "media" / "added.jpg").write_bytes(b"added")

    cli.env["SNAPKEEP_CRASH_AT"] = "restore.committed"
    res = cli.run("snapshot:restore", snap, "--yes", check=False)
    assert res.returncode == -signal.SIGKILL
    del cli.env["SNAPKEEP_CRASH_AT"]

    def restore_activity() -> dict:
        return json.loads(cli.run("activity:list", "--format", "json").stdout)[0]

    wait_for(lambda: restore_activity()["state"] == "complete",
             "the interrupted restore to be settled", timeout=60)
    a = restore_activity()
    assert (a["result"], a["snapshot_id"]) == ("success", snap), a
    assert any("completed it" in w for w in a["warnings"]), a
    assert (root / "hook-ran.txt").read_text().strip() == snap
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM sales_order WHERE entity_id < 30")
        assert cur.fetchone()[0] == 29
    conn.close()
    assert not (root / "pub" / "media" / "added.jpg").exists()
    assert not [p for p in root.rglob("*") if "snapkeep-" in p.name]
    assert not (root / "var" / ".maintenance.flag").exists()


def test_a_restore_that_fails_before_its_cutover_leaves_no_staging_copy_or_shadow(
        shop, mariadb):
    """The pause before the cut-over fails: the staging copies of the mounts (app/etc's
    holds env.php) and the shadow database are removed by the failed restore itself, not
    left for the next one (#13 item 8)."""
    cli, root, db = shop
    snap = live_backup(cli)
    cfg = root / "snapkeep.toml"
    text = cfg.read_text()
    pause = 'pause_command = "echo cannot pause; exit 3"\nresume_command = "true"\n'
    header = "[environments.develop-branch]\n"
    cfg.write_text(text.replace(header, header + pause) if header in text
                   else text + "\n" + header + pause)
    conn = mariadb.connect(db)
    db_before = checksums(conn, db)
    files_before = {m: tree(root / m) for m in ("var", "pub/media", "app/etc")}

    res = cli.run("snapshot:restore", snap, "--yes", check=False)
    assert res.returncode != 0 and "cannot pause" in res.stderr, res.stderr
    assert not [p for p in root.rglob("*") if "snapkeep-" in p.name]
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        assert [d for (d,) in cur.fetchall() if d != db and db in d] == []
    assert checksums(conn, db) == db_before
    assert {m: tree(root / m) for m in ("var", "pub/media", "app/etc")} == files_before
    conn.close()
