"""snapshot:export and snapshot:import as a user drives them: the files load with the stock
``mariadb`` client and ``tar``; a dump of another tool, or our own export, comes back in
as a new snapshot that restores exactly; broken input and viewers are refused; the API's
download is the CLI's file."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from tests.helpers.dbstate import assert_same
from tests.helpers.server import (
    Server,
    ServerTeam,
    cli_project,
    drop_mysql_database,
    wait_for,
)
from tests.helpers.shop import one_line_error, tree
from tests.helpers.transfer import (
    ENV,
    MOUNTS,
    damage,
    last_line,
    leftovers,
    load_with_client,
    mariadb_dump,
    private_servers,
    snapshot,
    state,
    trees,
    unzstd,
)


def loading(root: Path, db: str, table: str = "marker") -> Path | None:
    """The work directory of an import whose private server holds ``table`` in its scratch
    database (the table's .frm in the server's datadir)."""
    for frm in (root / ".snapkeep" / "imports").glob(
            f"*/mariadb/data/{scratch_name(db)}/{table}.frm"):
        return frm.parents[3]
    return None


# -- export --------------------------------------------------------------------------------------

def test_an_export_loads_with_the_stock_client_and_untars_with_tar(shop, mariadb, new_db,
                                                                   tmp_path) -> None:
    cli, root, db = shop
    sid = snapshot(cli)
    out = tmp_path / "export"
    res = cli.run("snapshot:export", sid, str(out))
    assert f"zstd -dc {out / 'database.sql.zst'} | mariadb NEWDB" in res.stdout
    meta = json.loads((out / "snapkeep-export.json").read_text())
    assert meta["snapshot_id"] == sid and meta["environment"] == ENV
    assert sorted(meta["files"]) == ["database.sql.zst", "mounts/app/etc.tar.zst",
                                     "mounts/pub/media.tar.zst", "mounts/var.tar.zst"]
    for name, facts in meta["files"].items():
        assert (out / name).stat().st_size == facts["size"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no work files left

    copy = new_db(f"{db}_copy")
    load_with_client(mariadb, unzstd(out / "database.sql.zst"), copy)
    assert_same(state(mariadb, copy), state(mariadb, db), "the exported database")
    for m in MOUNTS:
        dest = tmp_path / "untar" / m
        dest.mkdir(parents=True)
        subprocess.run(["tar", "--zstd", "-xpf", str(out / "mounts" / f"{m}.tar.zst"), "-C",
                        str(dest)], check=True, timeout=120)
        assert tree(dest) == tree(root / m), m

    again = cli.run("snapshot:export", sid, str(out), check=False)
    assert again.returncode == 2
    one_line_error(again, str(out), "already holds an export", "--force")
    cli.run("snapshot:export", sid, str(out), "--force")
    assert json.loads((out / "snapkeep-export.json").read_text())["snapshot_id"] == sid


# -- import --------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [[], ["--databases", "--add-drop-database"]],
                         ids=["plain-dump", "databases-dump"])
def test_a_mariadb_dump_with_mount_directories_imports_and_restores(shop, mariadb, new_db,
                                                                    tmp_path, options) -> None:
    cli, root, db = shop
    source_db, source_files = state(mariadb, db), trees(root)
    # The standard: what the stock client makes of the dump (mariadb-dump is itself not
    # exact: it writes FLOAT values with six significant digits).
    sql = mariadb_dump(mariadb, *options, db)
    reference = new_db(f"{db}_ref")
    load_with_client(mariadb, mariadb_dump(mariadb, db), reference)
    expected = state(mariadb, reference)

    src = tmp_path / "from-another-tool"
    src.mkdir()
    (src / "shop.sql").write_bytes(sql)
    for m in MOUNTS:
        shutil.copytree(root / m, src / m, symlinks=True)
    res = cli.run("snapshot:import", str(src), "-e", ENV)
    sid = last_line(res, "Snapshot name:")
    assert sid in cli.run("snapshot:list").stdout
    assert state(mariadb, db) == source_db and trees(root) == source_files  # live untouched

    damage(mariadb, db, root)
    cli.run("snapshot:restore", sid, "-y")
    assert_same(state(mariadb, db), expected, "the restored import")
    # ... which is the source, but for the FLOAT column the dump rounded
    restored, original = state(mariadb, db), dict(source_db)
    for s in (restored, original):
        s["tables"]["catalog_product_entity"].pop("checksum")
    assert_same(restored, original, "the restored import against the dumped database")
    assert trees(root) == source_files
    assert leftovers(mariadb, root) == (set(), [])


def test_our_own_export_imports_and_restores_exactly(shop, mariadb, tmp_path) -> None:
    cli, root, db = shop
    # links to shared storage, as deployments make them: kept by the snapshot, the export
    # and the import alike
    (root / "app/etc/env.shared.php").symlink_to("/srv/shared/app/etc/env.php")
    (root / "pub/media/up").symlink_to("../../..")
    sid = snapshot(cli)
    source_db, source_files = state(mariadb, db), trees(root)
    out = tmp_path / "export"
    cli.run("snapshot:export", sid, str(out))
    damage(mariadb, db, root)
    done = cli.run("snapshot:import", str(out))
    imported = last_line(done, "Snapshot name:")
    assert imported != sid
    assert "point outside it and are kept as links: env.shared.php -> " \
        "/srv/shared/app/etc/env.php" in done.stdout + done.stderr
    listed = cli.run("snapshot:list", "--format", "json", "--columns", "id,commit_id").stdout
    assert {s["id"] for s in json.loads(listed)} == {sid, imported}
    cli.run("snapshot:restore", imported, "-y")
    assert_same(state(mariadb, db), source_db, "the restored import of the export")
    assert trees(root) == source_files
    assert leftovers(mariadb, root) == (set(), [])


def test_a_broken_sql_file_fails_the_import_naming_the_file_and_line(shop, mariadb,
                                                                     tmp_path) -> None:
    cli, root, db = shop
    lines = mariadb_dump(mariadb, db).split(b"\n")
    at = next(i for i in range(len(lines) // 2, len(lines)) if lines[i - 1].endswith(b";"))
    lines.insert(at, b"INSERT INTO catalog_product_entity VALUES (1,,2);")
    src = tmp_path / "broken"
    src.mkdir()
    (src / "dump.sql").write_bytes(b"\n".join(lines))
    (src / "var").mkdir()
    before = state(mariadb, db)

    res = cli.run("snapshot:import", str(src), check=False)
    assert res.returncode == 2
    one_line_error(res, f"{src / 'dump.sql'} line {at + 1}:", "SQL syntax")
    assert "No snapshots yet" in cli.run("snapshot:list").stderr
    assert leftovers(mariadb, root) == (set(), [])
    assert state(mariadb, db) == before
    failed = json.loads(cli.run("activity:list", "--format", "json").stdout)[0]
    assert failed["type"] == "environment.backup.import" and failed["result"] == "failure"


def test_the_next_import_stops_and_removes_what_a_killed_import_left(shop, mariadb,
                                                                     tmp_path) -> None:
    cli, root, db = shop
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "slow.sql").write_text("CREATE TABLE marker (a int);\nSELECT SLEEP(5);\n")
    proc = cli.popen("snapshot:import", str(slow))
    try:
        work = wait_for(lambda: loading(root, db), "the import to load its scratch database",
                        60)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    killed = private_servers(root)
    assert len(killed) == 1  # its private server outlives it
    stale = root / ".snapkeep" / "imports" / f"{ENV}.killedimport0"
    stale.mkdir()
    conn = mariadb.connect()  # what an import killed before imports used a private server
    with conn.cursor() as cur:  # left on the environment's server
        cur.execute(f"CREATE DATABASE `{scratch_name(db)}`")
    conn.close()

    good = tmp_path / "good"
    good.mkdir()
    (good / "shop.sql").write_bytes(mariadb_dump(mariadb, db))
    res = cli.run("snapshot:import", str(good))
    assert f"stopped the private MariaDB server in {work}, left by an interrupted " \
        "import" in res.stderr
    assert f"dropped the scratch database `{scratch_name(db)}` an interrupted " \
        "import left behind" in res.stderr
    assert f"removing {stale}, left by an interrupted import" in res.stderr
    assert leftovers(mariadb, root) == (set(), [])
    listed = json.loads(cli.run("snapshot:list", "--format", "json").stdout)
    assert [s["id"] for s in listed] == [last_line(res, "Snapshot name:")]


def test_a_cancelled_import_lists_nothing_and_leaves_nothing(shop, mariadb, tmp_path) -> None:
    cli, root, db = shop
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "slow.sql").write_text("CREATE TABLE marker (a int);\nSELECT SLEEP(120);\n")
    activity = cli.run("snapshot:import", str(slow), "-W").stdout.strip().splitlines()[-1]
    wait_for(lambda: loading(root, db), "the import to load its scratch database", 60)
    cli.run("activity:cancel", activity)

    def ended() -> str | None:
        state = cli.run("activity:get", activity, "-P", "state").stdout.strip()
        return state if state in ("complete", "cancelled") else None

    assert wait_for(ended, "the cancelled import to end", 60) == "cancelled"
    assert "No snapshots yet" in cli.run("snapshot:list").stderr
    assert leftovers(mariadb, root) == (set(), [])


def scratch_name(db: str) -> str:
    from snapkeep.engines.mysql.names import import_name

    return import_name(db)


def test_import_refuses_a_directory_it_cannot_use(shop, tmp_path) -> None:
    cli, _root, _db = shop
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(cli.run("snapshot:import", str(empty), check=False),
                   "holds no SQL file", "exactly one")
    (empty / "a.sql").write_text("SELECT 1;\n")
    (empty / "b.sql.gz").write_bytes(b"")
    one_line_error(cli.run("snapshot:import", str(empty), check=False),
                   "2 SQL files (a.sql, b.sql.gz)")
    (empty / "b.sql.gz").unlink()
    (empty / "mounts").mkdir()
    (empty / "mounts" / "media.tar.zst").write_bytes(b"")
    one_line_error(cli.run("snapshot:import", str(empty), check=False),
                   "mount media", "does not have")


# -- through a server ----------------------------------------------------------------------------

@dataclass
class Team(ServerTeam):
    snapshot: str

    def export_url(self, part: str = "") -> str:
        base = f"/api/projects/shop/environments/{ENV}/backups/{self.snapshot}/export"
        return f"{base}/{part}" if part else base


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, mariadb) -> Iterator[Team]:
    base = tmp_path_factory.mktemp("transfer")
    # a big file: more than the download's queue and socket buffers
    p = cli_project(base, mariadb, ENV, big_file_mb=24)
    sid = snapshot(p.cli)
    server = Server(p.root / "snapkeep.toml", base, "--no-scheduler")
    try:
        yield Team(p.root, p.db, server, p.tokens, p.home, sid)
    finally:
        server.terminate()
        drop_mysql_database(mariadb, p.db)


def test_a_viewer_is_refused_export_through_the_api_and_the_cli(team: Team, tmp_path) -> None:
    with team.server.http(team.tokens["viewer"]) as http:
        for url in (team.export_url(), team.export_url("database.sql.zst"),
                    team.export_url("mounts/pub/media.tar.zst")):
            r = http.get(url)
            assert r.status_code == 403, (url, r.text)
            assert r.json()["error"]["type"] == "PermissionDenied"
            assert "Admin role to export a snapshot" in r.json()["error"]["message"]
    res = team.remote("viewer").run("snapshot:export", team.snapshot, str(tmp_path / "x"),
                                    check=False)
    assert res.returncode == 4
    one_line_error(res, "viewer role", "export a snapshot")
    assert not (tmp_path / "x" / "snapkeep-export.json").exists()


def test_the_api_download_is_the_cli_export(team: Team, tmp_path) -> None:
    local = tmp_path / "local"
    team.local().run("snapshot:export", team.snapshot, str(local))
    with team.server.http(team.tokens["admin"]) as http:
        listing = http.get(team.export_url()).json()
        assert sorted(p["name"] for p in listing["parts"]) == [
            "database.sql.zst", "mounts/app/etc.tar.zst", "mounts/pub/media.tar.zst",
            "mounts/var.tar.zst"]
        assert listing["metadata"]["snapshot_id"] == team.snapshot
        r = http.get(next(p["url"] for p in listing["parts"] if p["name"] == "database.sql.zst"))
        assert r.status_code == 200 and r.headers["content-type"] == "application/zstd"
        assert f"{team.snapshot}-database.sql.zst" in r.headers["content-disposition"]
        assert zstandard.ZstdDecompressor().stream_reader(r.content).read() == \
            unzstd(local / "database.sql.zst")
        assert http.get(team.export_url("mounts/nope.tar.zst")).status_code == 404

    remote = tmp_path / "remote"
    team.remote("admin").run("snapshot:export", team.snapshot, str(remote))
    meta = json.loads((remote / "snapkeep-export.json").read_text())
    assert sorted(meta["files"]) == sorted(p["name"] for p in listing["parts"])
    for name in meta["files"]:
        assert unzstd(remote / name) == unzstd(local / name), name


def test_a_client_that_disconnects_ends_the_download_and_frees_the_environment(
        team: Team) -> None:
    with team.server.http(team.tokens["admin"]) as http:
        with http.stream("GET", team.export_url("mounts/pub/media.tar.zst")) as r:
            assert r.status_code == 200
            next(r.iter_bytes(1 << 16))  # a little, then hang up

        def download_ended():
            acts = http.get("/api/projects/shop/activities", params={"environment": ENV}).json()
            a = next(a for a in acts if "downloaded mounts/pub/media.tar.zst" in a["description"])
            return a if a["state"] in ("complete", "cancelled") else None

        a = wait_for(download_ended, "the download's activity to end", 120)
        assert (a["state"], a["result"]) == ("cancelled", "failure")
        assert "stopped reading before the end" in a["error"]
        assert http.get(f"/api/projects/shop/environments/{ENV}").json()[
            "running_activity"] is None
        # the environment takes the next activity at once
        r = http.get(team.export_url("database.sql.zst"))
        assert r.status_code == 200 and r.content
