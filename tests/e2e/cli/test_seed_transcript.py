"""The seed's CLI workflow, driven as a person would: create, list, break, restore."""

from __future__ import annotations

import json

from tests.helpers.shop import checksums, git, live_backup, tree


def test_snapshot_list_break_and_restore_gives_back_data_and_files_but_not_code(shop, mariadb):
    cli, root, db = shop
    conn = mariadb.connect(db)
    before_db = checksums(conn, db)
    mounts = ("var", "pub/media", "app/etc")
    before_files = {m: tree(root / m) for m in mounts}

    # The seed: check out the environment branch, create the snapshot (alias `backup`).
    res = cli.run("backup", "--live")
    assert res.stdout.strip().splitlines()[-1].startswith("Snapshot name: ")
    snap = res.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    assert "Creating a snapshot of develop-branch" in res.stderr
    assert "Waiting for the activity" in res.stderr
    assert f"Created backup {snap}" in res.stderr
    assert "(complete)" in res.stderr and "succeeded" in res.stderr

    listing = cli.run("snapshot:list")
    assert "Snapshots on the project (shop), environment develop-branch (type: development)" \
        in listing.stderr
    assert "| Created" in listing.stdout and "| Snapshot ID" in listing.stdout
    row = next(line for line in listing.stdout.splitlines() if snap in line)
    assert row.rstrip().endswith("| true       |")

    data = json.loads(cli.run("snapshot:list", "--format", "json").stdout)
    assert [d["id"] for d in data] == [snap]
    item = data[0]
    for key in ("environment", "created_at", "expires_at", "restorable", "live", "automated",
                "commit_id", "size_bytes", "status"):
        assert key in item
    assert item["live"] is True and item["restorable"] is True and item["size_bytes"] > 0
    assert item["commit_id"] == git(root, "rev-parse", "HEAD")

    # Break the data, the files and change the code.
    with conn.cursor() as cur:
        cur.execute("DELETE FROM sales_order WHERE entity_id % 2 = 0")
        cur.execute("UPDATE catalog_product_entity SET price = 0")
        cur.execute("DROP VIEW big_orders")
        cur.execute("CREATE TABLE intruder (id INT PRIMARY KEY)")
    (root / "var" / "log" / "system.log").write_text("overwritten\n")
    (root / "pub" / "media" / "catalog" / "product" / "img3.jpg").unlink()
    (root / "pub" / "media" / "new.jpg").write_bytes(b"new")
    (root / "app" / "code" / "Module.php").write_text("<?php // newer code\n")
    git(root, "commit", "-qam", "newer code")
    code_commit = git(root, "rev-parse", "HEAD")

    res = cli.run("snapshot:restore", snap, "--yes")
    assert "succeeded" in res.stderr
    assert "git revert" in res.stderr  # the code differs from the snapshot's commit

    assert checksums(conn, db) == before_db
    for m in mounts:
        assert tree(root / m) == before_files[m], m
    # Code is not part of a snapshot: the newer code stays.
    assert (root / "app" / "code" / "Module.php").read_text() == "<?php // newer code\n"
    assert git(root, "rev-parse", "HEAD") == code_commit
    conn.close()

    acts = json.loads(cli.run("activity:list", "--format", "json").stdout)
    assert [(a["type"], a["result"]) for a in acts] == [
        ("environment.restore", "success"), ("environment.backup", "success")]
    log = cli.run("activity:log", acts[1]["id"]).stdout
    assert f"Created backup {snap}" in log


def test_restore_without_an_id_takes_the_most_recent_and_asks_first(shop):
    cli, root, _db = shop
    cli.run("snapshot:create", "--live")
    second = cli.run("snapshot:create").stdout.strip().splitlines()[-1].split(": ")[1]
    refused = cli.run("snapshot:restore", check=False, stdin="")
    assert refused.returncode != 0 and "--yes" in refused.stderr
    assert second in refused.stderr  # it says which snapshot it would restore
    ok = cli.run("backup:restore", "-y")
    assert f"Restoring backup {second}" in ok.stderr


def test_a_consistent_snapshot_pauses_with_the_maintenance_flag_and_always_resumes(shop):
    cli, root, _db = shop
    res = cli.run("snapshot:create")
    assert "Paused develop-branch (var/.maintenance.flag)" in res.stderr
    assert "Resumed develop-branch" in res.stderr
    assert not (root / "var" / ".maintenance.flag").exists()
    snap = res.stdout.strip().splitlines()[-1].split(": ")[1]
    got = json.loads(cli.run("snapshot:get", snap, "--format", "json").stdout)
    assert got["live"] is False
    assert cli.run("snapshot:get", snap, "--property", "live").stdout.strip() == "false"


def test_no_wait_returns_the_activity_id_and_the_worker_finishes_it(shop):
    cli, root, _db = shop
    res = cli.run("snapshot:create", "--live", "-W")
    activity = res.stdout.strip().splitlines()[-1]
    log = cli.run("activity:log", activity).stdout  # follows until the activity completes
    assert "Created backup" in log
    acts = json.loads(cli.run("activity:list", "--format", "json").stdout)
    assert acts[0]["id"] == activity and acts[0]["result"] == "success"
    assert acts[0]["snapshot_id"]


def test_snapshot_delete_removes_it_from_the_list(shop):
    cli, root, _db = shop
    snap = live_backup(cli)
    cli.run("snapshot:delete", snap)
    assert json.loads(cli.run("snapshots", "--format", "json").stdout) == []
    gone = cli.run("snapshot:get", snap, check=False)
    assert gone.returncode != 0 and f"snapshot {snap} does not exist" in gone.stderr


def test_list_formats_columns_and_header(shop):
    cli, root, _db = shop
    snap = live_backup(cli)
    csv = cli.run("snapshot:list", "--format", "csv", "--columns", "id,live,size,status",
                  "--no-header").stdout.strip()
    assert csv.startswith(f"{snap},true,") and csv.endswith(",complete")
    tsv = cli.run("snapshot:list", "--format", "tsv").stdout.splitlines()
    assert tsv[0] == "Created\tSnapshot ID\tRestorable"
    bad = cli.run("snapshot:list", "--columns", "nope", check=False)
    assert bad.returncode == 2 and "unknown column nope" in bad.stderr


def test_thread_counts_can_be_chosen_for_dump_and_restore(shop, mariadb):
    cli, root, db = shop
    conn = mariadb.connect(db)
    before = checksums(conn, db)
    res = cli.run("snapshot:create", "--live", "--threads", "1")
    assert "on 1 connection(s)" in res.stderr
    snap = res.stdout.strip().splitlines()[-1].split(": ")[1]
    with conn.cursor() as cur:
        cur.execute("DELETE FROM catalog_product_entity")
    cli.run("snapshot:restore", snap, "--yes", "-t", "3")
    assert checksums(conn, db) == before
    bad = cli.run("snapshot:create", "--threads", "0", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
