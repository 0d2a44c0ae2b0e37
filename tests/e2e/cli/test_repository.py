"""The repository as a user meets it: encryption, deduplication, verify/check, prune, keys,
S3 storage, a full disk and a storage server that goes away."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tests.helpers.shop import Cli, checksums, cli_env, make_app_root, make_shop, tree

MARKER = "Snapkeep-Marker-7f3a9c"


def snap_id(res) -> str:
    return res.stdout.strip().splitlines()[-1].split(": ", 1)[1]


def repo_files(root: Path) -> list[Path]:
    return [p for p in (root / ".snapkeep" / "repository").rglob("*") if p.is_file()]


def listing(cli: Cli) -> list[dict]:
    return json.loads(cli.run("snapshot:list", "--format", "json").stdout)


def test_the_repository_holds_no_plaintext_of_the_data(shop, mariadb):
    cli, root, db = shop
    with mariadb.connect(db).cursor() as cur:
        cur.execute("INSERT INTO order_log (note) VALUES (%s)", (MARKER,))
    (root / "app" / "etc" / "secret.php").write_text(f"<?php // {MARKER}\n")
    cli.run("backup", "--live")
    for p in repo_files(root):
        assert MARKER.encode() not in p.read_bytes(), p
    status = json.loads(cli.run("key:status", "--format", "json").stdout)
    assert status["encrypted"] is True and status["protected"] is True


def test_an_unchanged_second_snapshot_adds_almost_nothing_and_both_restore(shop, mariadb):
    cli, root, db = shop
    media = root / "pub" / "media" / "catalog" / "product"
    for i in range(8):
        (media / f"big{i}.bin").write_bytes(os.urandom(1 << 20))
    first = snap_id(cli.run("backup", "--live"))
    second = snap_id(cli.run("backup", "--live"))
    sizes = {s["id"]: s for s in listing(cli)}
    assert sizes[second]["added_bytes"] < 0.05 * sizes[first]["added_bytes"]
    assert sizes[first]["added_bytes"] > 8 << 20
    assert "Added" in cli.run("snapshot:list", "--columns", "id,size,added").stdout
    before = checksums(mariadb.connect(db), db), tree(root / "pub" / "media")
    (media / "big0.bin").unlink()
    cli.run("snapshot:restore", first, "--yes")
    assert (checksums(mariadb.connect(db), db), tree(root / "pub" / "media")) == before


def test_verify_and_check_find_a_flipped_byte_and_name_what_is_damaged(shop):
    cli, root, _db = shop
    snap = snap_id(cli.run("backup", "--live"))
    assert "no problems found" in cli.run("snapshot:verify", snap).stderr
    assert "no problems found" in cli.run("repository:check", "--read-data").stderr
    packs = [p for p in repo_files(root) if "/data/" in str(p)]
    pack = max(packs, key=lambda p: p.stat().st_size)
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 3] ^= 0x01
    pack.write_bytes(bytes(raw))
    res = cli.run("snapshot:verify", snap, check=False)
    assert res.returncode == 7 and f"snapshot {snap} is damaged" in res.stderr
    res = cli.run("repository:check", "--read-data", check=False)
    assert res.returncode == 7 and pack.name in res.stdout + res.stderr


def test_a_damaged_index_is_reported_by_check(shop):
    cli, root, _db = shop
    cli.run("backup", "--live")
    (index,) = [p for p in repo_files(root) if "/index/" in str(p)]
    raw = bytearray(index.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    index.write_bytes(bytes(raw))
    res = cli.run("repository:check", check=False)
    assert res.returncode == 7 and index.name in res.stdout + res.stderr


def test_deleted_snapshots_are_reclaimed_by_prune(shop):
    cli, root, _db = shop
    media = root / "pub" / "media"
    (media / "only-in-first.bin").write_bytes(os.urandom(4 << 20))
    first = snap_id(cli.run("backup", "--live"))
    (media / "only-in-first.bin").unlink()
    second = snap_id(cli.run("backup", "--live"))
    size_before = sum(p.stat().st_size for p in repo_files(root))
    cli.run("snapshot:delete", first)
    stored = {p: p.read_bytes() for p in repo_files(root)}
    dry = cli.run("repository:prune", "--dry-run")
    assert {p: p.read_bytes() for p in repo_files(root)} == stored  # nothing changed
    would_free = re.search(r"would free (\S+ \S+)", dry.stderr).group(1)
    # the packs it deletes or repacks (then deletes), the index files it replaces
    planned = re.findall(r"^(?:delete|repack) (data/\S+|index/\S+)", dry.stdout, re.M)
    assert any(k.startswith("data/") for k in planned)
    res = cli.run("repository:prune")
    assert f"{would_free} freed" in res.stderr
    store = root / ".snapkeep" / "repository"
    assert not [k for k in planned if (store / k).exists()]  # each planned deletion done
    size_after = sum(p.stat().st_size for p in repo_files(root))
    assert size_before - size_after > 3 << 20
    assert "no problems found" in cli.run("repository:check", "--read-data").stderr
    cli.run("snapshot:restore", second, "--yes")


def test_a_passphrase_project_refuses_the_wrong_passphrase(tmp_path, mariadb, fresh_db):
    root = tmp_path / "shop"
    root.mkdir()
    make_app_root(root)
    cli = Cli(root, {**cli_env(), "SNAPKEEP_PASSPHRASE": "the right passphrase"})
    cli.run("init", "--passphrase", "--database", mariadb.url(fresh_db))
    assert not (root / ".snapkeep" / "repository.key").exists()
    cli.run("backup", "--live")
    cli.env["SNAPKEEP_PASSPHRASE"] = "not the passphrase"
    res = cli.run("snapshot:list", check=False)
    assert res.returncode == 7 and "wrong passphrase" in res.stderr
    assert "not the passphrase" not in res.stderr
    del cli.env["SNAPKEEP_PASSPHRASE"]
    res = cli.run("snapshot:list", check=False)
    assert res.returncode == 2 and "SNAPKEEP_PASSPHRASE" in res.stderr
    cli.env["SNAPKEEP_PASSPHRASE"] = "the right passphrase"
    cli.env["SNAPKEEP_NEW_PASSPHRASE"] = "a newer passphrase"
    cli.run("key:passphrase")
    cli.env["SNAPKEEP_PASSPHRASE"] = "a newer passphrase"
    assert len(listing(cli)) == 1


def s3_project(tmp_path: Path, mariadb, db: str, s3, prefix: str) -> tuple[Cli, Path]:
    root = make_shop(tmp_path / "shop", mariadb, db)
    (root / "snapkeep.toml").write_text(
        '[project]\nid = "shop"\nplan = "starter"\n' + s3.config_toml(prefix) +
        'key_file = ".snapkeep/repository.key"\n\n'
        '[environments.develop-branch]\ntype = "development"\nroot = "."\n'
        'mounts = ["var", "pub/media", "app/etc"]\n'
        f'database = "{mariadb.url(db)}"\n')
    cli = Cli(root, cli_env())
    cli.run("init")
    return cli, root


def test_a_repository_on_s3_storage_round_trips(tmp_path, mariadb, fresh_db, seaweed_s3):
    cli, root = s3_project(tmp_path, mariadb, fresh_db, seaweed_s3, f"e2e-{fresh_db}")
    conn = mariadb.connect(fresh_db)
    before = checksums(conn, fresh_db), tree(root / "pub" / "media")
    snap = snap_id(cli.run("snapshot:create"))
    with conn.cursor() as cur:
        cur.execute("DELETE FROM sales_order")
    (root / "pub" / "media" / "placeholder.jpg").unlink()
    cli.run("snapshot:restore", snap, "--yes")
    assert (checksums(conn, fresh_db), tree(root / "pub" / "media")) == before
    assert "no problems found" in cli.run("repository:check", "--read-data").stderr
    keys = [o["Key"] for o in seaweed_s3.client().list_objects_v2(
        Bucket="snapkeep-test", Prefix=f"e2e-{fresh_db}/").get("Contents", [])]
    assert any("/data/" in k for k in keys) and any("/snapshots/" in k for k in keys)


def test_a_storage_server_that_stays_down_is_a_clear_error_and_leaves_nothing(
        tmp_path, mariadb, fresh_db, private_seaweed_s3):
    s3 = private_seaweed_s3
    cli, root = s3_project(tmp_path, mariadb, fresh_db, s3, "outage-e2e")
    snap_id(cli.run("backup", "--live"))
    s3.kill()
    try:
        res = cli.run("snapshot:create", check=False, timeout=240)
        assert res.returncode == 7 and "unavailable after" in res.stderr
        assert "Traceback" not in res.stderr
        assert not (root / "var" / ".maintenance.flag").exists()  # resumed
    finally:
        s3.start()
    assert len(listing(cli)) == 1
    assert "no problems found" in cli.run("repository:check").stderr


def test_a_full_repository_disk_is_a_clear_error_and_the_shop_is_resumed(shop, tiny_disk):
    cli, root, _db = shop
    cfg = root / "snapkeep.toml"
    cfg.write_text(re.sub(r"(?m)^# repository = .*$", f'repository = "{tiny_disk}/repo"',
                          cfg.read_text()))
    cli.run("init")
    (root / "pub" / "media" / "huge.bin").write_bytes(os.urandom(6 << 20))
    res = cli.run("snapshot:create", check=False)
    assert res.returncode == 7 and "is full" in res.stderr and "Traceback" not in res.stderr
    assert not (root / "var" / ".maintenance.flag").exists()
    assert listing(cli) == []


def test_two_environments_snapshot_into_one_repository_at_once(shop, mariadb):
    cli, root, db = shop
    other_root = root.parent / "staging-root"
    other_root.mkdir()
    make_app_root(other_root)
    (other_root / "pub" / "media" / "bulk.bin").write_bytes(os.urandom(24 << 20))
    (root / "pub" / "media" / "bulk.bin").write_bytes(os.urandom(24 << 20))
    cfg = root / "snapkeep.toml"
    cfg.write_text(cfg.read_text() + f'\n[environments.staging]\ntype = "development"\n'
                   f'root = "{other_root}"\nmounts = ["pub/media", "var"]\n')
    procs = [cli.popen("snapshot:create", "--live", "-e", env)
             for env in ("develop-branch", "staging")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ids = [out.strip().splitlines()[-1].split(": ")[1] for out, _err in outs]
    for env, sid in zip(("develop-branch", "staging"), ids, strict=True):
        assert "no problems found" in cli.run("snapshot:verify", sid, "-e", env).stderr
    assert "no problems found" in cli.run("repository:check", "--read-data").stderr
