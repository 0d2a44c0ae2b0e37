"""snapshot:import through a real ``snapkeep serve``: the remote CLI streams the directory
as a tar to ``POST …/backups/import``; the server extracts it into a staging directory,
runs the normal import activity and removes the directory. Refusals come before the body
is read (roles) or leave nothing behind (hostile members, a client that hangs up)."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import zstandard

from snapkeep.config import load_config
from snapkeep.services.context import Context
from tests.helpers.dbstate import assert_same, databases
from tests.helpers.server import (
    Server,
    ServerTeam,
    cli_project,
    drop_mysql_database,
    served_project,
    wait_activity,
    wait_for,
)
from tests.helpers.shop import one_line_error
from tests.helpers.transfer import (
    ENV,
    MOUNTS,
    damage,
    last_line,
    leftovers,
    load_with_client,
    mariadb_dump,
    snapshot,
    state,
    trees,
)

UPLOAD = f"/api/projects/shop/environments/{ENV}/backups/import"


@dataclass
class Team(ServerTeam):
    def staging(self) -> list[str]:
        """The staging directories under .snapkeep/uploads (the lock file is no upload)."""
        base = self.root / ".snapkeep" / "uploads"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def facts(self) -> tuple[list, list]:
        """(activities with state and result, snapshot IDs), as the server lists them."""
        with self.server.http(self.tokens["admin"]) as http:
            acts = http.get("/api/projects/shop/activities", params={"limit": 500}).json()
            snaps = http.get(f"/api/projects/shop/environments/{ENV}/backups").json()
        return (sorted((a["id"], a["state"], a["result"]) for a in acts),
                sorted(s["id"] for s in snaps))


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, mariadb) -> Iterator[Team]:
    with served_project(tmp_path_factory.mktemp("upload"), mariadb, ENV) as (p, server):
        yield Team(p.root, p.db, server, p.tokens, p.home)
    assert "internal error" not in server.log(), server.log()


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def member(name: str, data: bytes | None = b"SELECT 1;\n", kind: bytes = tarfile.REGTYPE,
           link: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info, data if kind == tarfile.REGTYPE else None


# -- the feature --------------------------------------------------------------------------------

def test_an_export_imported_through_the_server_restores_exactly(team: Team, mariadb,
                                                                tmp_path) -> None:
    local = team.local()
    sid = snapshot(local)
    source_db, source_files = state(mariadb, team.db), trees(team.root)
    out = tmp_path / "export"
    local.run("snapshot:export", sid, str(out))
    damage(mariadb, team.db, team.root)

    res = team.remote().run("snapshot:import", str(out))
    imported = last_line(res, "Snapshot name:")
    assert imported != sid
    assert f"Importing a snapshot of {ENV} from {out}" in res.stderr
    assert f"Uploading {out} to {team.server.url}" in res.stderr
    assert "Uploaded 5 files (" in res.stderr  # the description, the database, three mounts
    assert f"(Admin imported a backup of {ENV} from an upload (the export of snapshot " \
        f"{sid})):" in res.stderr
    assert f"Created backup {imported} of {ENV} from the export of snapshot {sid} in the " \
        "upload" in res.stderr  # the log, followed, naming no path of the server's host
    assert ".snapkeep/uploads" not in res.stderr
    assert "Activity " in res.stderr and " succeeded" in res.stderr
    assert team.staging() == []  # removed when the activity ended
    assert leftovers(mariadb, team.root) == (set(), [])

    listed = json.loads(local.run("snapshot:list", "--format", "json").stdout)
    assert imported in [s["id"] for s in listed]
    team.remote().run("snapshot:restore", imported, "--yes")
    assert_same(state(mariadb, team.db), source_db, "the restored upload of the export")
    assert trees(team.root) == source_files


def test_a_dump_with_mount_directories_uploads_and_restores(team: Team, mariadb, new_db,
                                                            tmp_path) -> None:
    source_db, source_files = state(mariadb, team.db), trees(team.root)
    reference = new_db(f"{team.db}_ref")  # what the stock client makes of the dump
    sql = mariadb_dump(mariadb, team.db)
    load_with_client(mariadb, sql, reference)
    expected = state(mariadb, reference)
    src = tmp_path / "from-another-tool"
    src.mkdir()
    (src / "shop.sql").write_bytes(sql)
    (src / "README.txt").write_text("not part of an import\n")
    for m in MOUNTS:
        shutil.copytree(team.root / m, src / m, symlinks=True)  # pub/media holds a symlink
    os.mkfifo(src / "var" / "pipe")  # a snapshot leaves FIFOs out; so does the upload
    stale = team.root / ".snapkeep" / "uploads" / f"{ENV}.killedserver0"
    stale.mkdir(parents=True)  # as a killed server leaves it: nobody holds its lock
    (stale / "shop.sql").write_text("-- half an upload\n")

    res = team.remote().run("snapshot:import", str(src), "-t", "2")
    imported = last_line(res, "Snapshot name:")
    assert "skipped var/pipe: sockets, FIFOs and devices are not part of a snapshot" \
        in res.stderr
    assert f"removed {stale}, left by an interrupted upload" in res.stderr
    assert "from an upload (shop.sql)" in res.stderr
    assert team.staging() == []

    damage(mariadb, team.db, team.root)
    team.local().run("snapshot:restore", imported, "-y")
    assert_same(state(mariadb, team.db), expected, "the restored upload of the dump")
    assert trees(team.root) == source_files
    restored = state(mariadb, team.db)
    for s in (restored, source_db):
        s["tables"]["catalog_product_entity"].pop("checksum")  # mariadb-dump rounds FLOATs
    assert_same(restored, source_db, "the restored upload against the dumped database")


def test_a_directory_that_is_no_import_is_refused_after_the_upload_and_leaves_nothing(
        team: Team, tmp_path) -> None:
    before = team.facts()
    src = tmp_path / "no-dump"
    (src / "var").mkdir(parents=True)
    res = team.remote().run("snapshot:import", str(src), check=False)
    assert res.returncode == 2
    line = one_line_error(res, "the uploaded directory holds no SQL file", "exactly one")
    assert ".snapkeep" not in line  # the server's staging path is not the user's business
    assert team.staging() == [] and team.facts() == before


# -- refusals -----------------------------------------------------------------------------------

def test_a_viewer_is_refused_before_the_body_is_read_and_nothing_is_created(team: Team,
                                                                            tmp_path) -> None:
    before = team.facts()
    body = tar_of(member("shop.sql"))
    with team.server.http(team.tokens["viewer"]) as http:
        for params in ({}, {"check": "true"}):
            r = http.post(UPLOAD, params=params, content=body,
                          headers={"Content-Type": "application/x-tar"})
            assert r.status_code == 403, r.text
            assert r.json()["error"]["type"] == "PermissionDenied"
            assert "Admin role to import a snapshot" in r.json()["error"]["message"]
    src = tmp_path / "dump"
    src.mkdir()
    (src / "shop.sql").write_text("SELECT 1;\n")
    res = team.remote("viewer").run("snapshot:import", str(src), check=False)
    assert res.returncode == 4
    one_line_error(res, "viewer role", "import a snapshot", "Ask a project admin")
    assert "Uploading" not in res.stderr  # refused before anything was sent
    assert team.staging() == [] and team.facts() == before


def test_an_upload_larger_than_the_servers_free_space_is_refused_before_it_is_read(
        team: Team) -> None:
    before = team.facts()
    free = shutil.disk_usage(team.root / ".snapkeep").free
    body = tar_of(member("shop.sql"))
    with team.server.http(team.tokens["admin"]) as http:
        for params in ({"check": "true"}, {}):
            r = http.post(UPLOAD, params={**params, "size": free}, content=body,
                          headers={"Content-Type": "application/x-tar"})
            assert r.status_code == 507, r.text
            error = r.json()["error"]
            assert error["type"] == "InsufficientSpace"
            assert "free space on the server" in error["message"]
        # the same upload, announced at its real size, is taken
        r = http.post(UPLOAD, params={"check": "true", "size": len(body)}, content=b"")
        assert r.status_code == 204, r.text
    assert team.staging() == [] and team.facts() == before


def test_an_inactive_or_unknown_environment_is_refused_before_the_upload(team: Team,
                                                                         tmp_path) -> None:
    before = team.facts()
    src = tmp_path / "dump"
    src.mkdir()
    (src / "shop.sql").write_text("SELECT 1;\n")
    team.local().run("environment:deactivate", "-e", ENV)
    try:
        res = team.remote().run("snapshot:import", str(src), check=False)
        assert res.returncode == 4
        one_line_error(res, f"environment {ENV} is inactive", "environment:activate")
        assert "Uploading" not in res.stderr
        with team.server.http(team.tokens["admin"]) as http:
            r = http.post(UPLOAD, content=tar_of(member("shop.sql")))
            assert r.status_code == 409 and r.json()["error"]["type"] == "PolicyError", r.text
    finally:
        team.local().run("environment:activate", "-e", ENV)
    with team.server.http(team.tokens["admin"]) as http:
        r = http.post(UPLOAD.replace(ENV, "nope"), content=tar_of(member("shop.sql")))
        assert r.status_code == 404 and "environment 'nope' does not exist" in r.text
    assert team.staging() == [] and team.facts() == before


@pytest.mark.parametrize(("members", "said"), [
    ([member("first.sql"), member("../../escaped")], "leads out of the directory"),
    ([member("first.sql"), member("/tmp/snapkeep-upload-escaped")], "is an absolute path"),
    ([member("first.sql"), member("shop.sql", kind=tarfile.SYMTYPE, link="/etc/passwd")],
     "'shop.sql' is a link"),
    ([member("first.sql"), member("copy.sql", kind=tarfile.LNKTYPE, link="first.sql")],
     "'copy.sql' is a link"),
    ([member("first.sql"), member("var/pipe", kind=tarfile.FIFOTYPE)], "is a FIFO"),
    ([member("first.sql"), member("var", kind=tarfile.DIRTYPE),
      member("var/out", kind=tarfile.SYMTYPE, link="../../.."),
      member("var/out/escaped")], "which is not a directory"),
], ids=["dotdot", "absolute", "symlink", "hardlink", "fifo", "below-a-symlink"])
def test_a_hostile_body_is_refused_with_400_and_leaves_nothing(team: Team, members,
                                                               said) -> None:
    before = team.facts()
    with team.server.http(team.tokens["admin"]) as http:
        r = http.post(UPLOAD, content=tar_of(*members),
                      headers={"Content-Type": "application/x-tar"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "BadUpload" and said in err["message"], err
    assert err["message"].startswith("the upload was refused: ")
    assert team.staging() == [] and team.facts() == before
    state_dir = team.root / ".snapkeep"
    for outside in (state_dir / "escaped", state_dir / "uploads" / "escaped",
                    Path("/tmp/snapkeep-upload-escaped")):
        assert not os.path.lexists(outside), outside


def test_a_body_that_is_no_tar_is_refused_with_400(team: Team) -> None:
    with team.server.http(team.tokens["admin"]) as http:
        r = http.post(UPLOAD, content=b"not a tar at all\n" * 1000)
    assert r.status_code == 400 and r.json()["error"]["type"] == "BadUpload", r.text
    assert "cannot be read as a tar file" in r.json()["error"]["message"]
    assert team.staging() == []


def test_a_client_that_hangs_up_mid_upload_leaves_no_staging_directory_or_snapshot(
        team: Team) -> None:
    before = team.facts()
    url = urlparse(team.server.url)
    head = tarfile.TarInfo("shop.sql")
    head.size = 64 << 20  # announced; a fraction is sent
    # more than the server's copy buffer (1 MiB), so some of it reaches the disk
    first = head.tobuf(tarfile.PAX_FORMAT) + b"-- a dump that never ends\n" * 160_000
    with socket.create_connection((url.hostname, url.port), timeout=30) as s:
        s.sendall((f"POST {UPLOAD}?size={head.size} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                   f"Authorization: Bearer {team.tokens['admin']}\r\n"
                   "Content-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n"
                   ).encode())
        s.sendall(f"{len(first):x}\r\n".encode() + first + b"\r\n")

        def receiving() -> bool:
            dirs = team.staging()
            part = team.root / ".snapkeep" / "uploads" / dirs[0] / "shop.sql" if dirs \
                else None
            return part is not None and part.exists() and part.stat().st_size > 0
        wait_for(receiving, "the server to write the upload into its staging directory", 60)
    # hung up mid-file: the staging directory goes, nothing is listed
    wait_for(lambda: team.staging() == [], "the staging directory to be removed", 60)
    assert team.facts() == before
    with team.server.http(team.tokens["admin"]) as http:  # the environment is free
        assert http.post(UPLOAD, params={"check": "true"}).status_code == 204


def chunked(data: bytes) -> Iterator[bytes]:
    """``data`` as a streamed body: no Content-Length."""
    yield data


def test_an_upload_that_does_not_say_its_size_is_refused_with_411(team: Team) -> None:
    before = team.facts()
    with team.server.http(team.tokens["admin"]) as http:
        r = http.post(UPLOAD, content=chunked(tar_of(member("shop.sql"))),
                      headers={"Content-Type": "application/x-tar"})
    assert r.status_code == 411, r.text
    error = r.json()["error"]
    assert error["type"] == "SizeRequired"
    assert "?size=BYTES" in error["message"] and "Content-Length" in error["message"]
    assert team.staging() == [] and team.facts() == before


def test_an_upload_holding_more_than_its_declared_size_is_refused(team: Team) -> None:
    before = team.facts()
    body = tar_of(member("shop.sql", b"SELECT 1;\n" * 100))
    with team.server.http(team.tokens["admin"]) as http:
        r = http.post(UPLOAD, params={"size": 10}, content=chunked(body),
                      headers={"Content-Type": "application/x-tar"})
    assert r.status_code == 400, r.text
    assert "more than the 10 bytes of file content it declared" in r.json()["error"]["message"]
    assert team.staging() == [] and team.facts() == before


def zstd_bomb(expands_to: int) -> bytes:
    """A mount tar of one file of zeros, zstd-compressed: a few KB that expand a lot."""
    class Zeros(io.RawIOBase):
        left = expands_to

        def readinto(self, buf) -> int:
            n = min(len(buf), self.left)
            buf[:n] = bytes(n)
            self.left -= n
            return n

    out = io.BytesIO()
    with zstandard.ZstdCompressor(level=19).stream_writer(out, closefd=False) as z, \
            tarfile.open(fileobj=z, mode="w|") as tar:
        info = tarfile.TarInfo("zeros.bin")
        info.size = expands_to
        tar.addfile(info, Zeros())
    return out.getvalue()


def test_a_zstd_bomb_stops_at_the_expansion_limit_and_leaves_nothing(team: Team,
                                                                     mariadb) -> None:
    _acts, snaps = team.facts()
    bomb = zstd_bomb(512 << 20)
    assert len(bomb) < 64 << 10  # half a GiB in a few KB
    body = tar_of(member("shop.sql"), member("mounts/var.tar.zst", bomb))
    with team.server.http(team.tokens["admin"]) as http:
        r = http.post(UPLOAD, content=body, headers={"Content-Type": "application/x-tar"})
        assert r.status_code == 202, r.text
        done = wait_for(lambda: (a := http.get(r.headers["Location"]).json())["state"] ==
                        "complete" and a, "the import to end", 120)
    assert done["result"] == "failure", done
    assert "var.tar.zst expands to more than 16 MiB" in done["error"]
    assert "SNAPKEEP_UPLOAD_MAX_RATIO" in done["error"]
    assert team.facts()[1] == snaps  # no snapshot
    assert team.staging() == []
    assert leftovers(mariadb, team.root) == (set(), [])  # no scratch database, no work dir


def test_the_openapi_document_describes_the_upload(team: Team) -> None:
    doc = httpx.get(f"{team.server.url}/api/openapi.json", timeout=30).json()
    op = doc["paths"]["/api/projects/{project}/environments/{env}/backups/import"]["post"]
    assert "application/x-tar" in op["requestBody"]["content"]
    assert {"202", "400", "403", "409"} <= set(op["responses"])


def test_a_server_stopped_during_an_uploaded_import_ends_it_and_leaves_nothing(
        tmp_path, mariadb) -> None:
    # A server of its own, stopped while its import runs (in a thread of its own: the
    # server has no worker threads here).
    p = cli_project(tmp_path, mariadb, ENV)
    server = Server(p.root / "snapkeep.toml", tmp_path, "--no-scheduler", "--workers", "0")
    try:
        body = tar_of(member("var", None, tarfile.DIRTYPE),
                      member("var/a.txt", b"a\n"),
                      # a load that is still running when the server is told to stop
                      member("slow.sql", b"CREATE TABLE t (id INT PRIMARY KEY);\n"
                                         b"DO SLEEP(60);\n"))
        with server.http(p.tokens["admin"]) as http:
            r = http.post(UPLOAD, content=body, headers={"Content-Type": "application/x-tar"})
            assert r.status_code == 202, r.text
            activity = r.json()["id"]
            wait_for(lambda: "slow.sql" in http.get(
                f"/api/projects/shop/activities/{activity}/log",
                params={"follow": False}).text, "the import to start loading the dump")
        assert server.terminate() == 0
    finally:
        server.kill()
        drop_mysql_database(mariadb, p.db)
    # Read the catalog as the server left it (no command of ours settles it first).
    ctx = Context(load_config(str(p.root / "snapkeep.toml")))
    a = ctx.catalog.get_activity(activity)
    assert (a.state, a.result) == ("complete", "failure"), (a.state, a.result, a.error)
    assert "was stopped before the activity ended; start it again" in a.error
    assert ctx.catalog.snapshot_ids() == set()
    staging = p.root / ".snapkeep" / "uploads"
    assert not staging.is_dir() or [d for d in staging.iterdir() if d.is_dir()] == []
    assert not [d for d in databases(mariadb.connect()) if "__skimport_" in d]


def test_an_uploaded_hostile_dump_reaches_no_other_database(team: Team, mariadb, new_db,  # noqa: F811
                                                            tmp_path) -> None:
    """The upload route loads a dump the way a local import does: into a private server,
    where another environment's database is not (issue #13, item 1)."""
    other = new_db(f"{team.db}_other")
    conn = mariadb.connect(other)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE customer (id int PRIMARY KEY, name text)")
        cur.execute("INSERT INTO customer VALUES (1, 'customer-secret-4711')")
    conn.close()
    before = state(mariadb, other)
    sql = (f"CREATE TABLE t (a int);\nUPDATE `{other}`.customer SET name = 'pwned';\n"
           f"CREATE TABLE stolen AS SELECT * FROM `{other}`.customer;\n").encode()
    with team.server.http(team.tokens["admin"]) as http:
        r = http.post(UPLOAD, content=tar_of(member("dump.sql", sql)),
                      headers={"Content-Type": "application/x-tar"})
        assert r.status_code == 202, r.text
        ended = wait_activity(http, r.json())
    assert state(mariadb, other) == before
    assert (ended["state"], ended["result"]) == ("complete", "failure"), ended
    assert "dump.sql line 2: " in ended["error"], ended["error"]  # no such table there
    assert team.staging() == []
    assert leftovers(mariadb, team.root) == (set(), [])
