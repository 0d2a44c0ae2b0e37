"""Exports and imports as a user drives them (the e2e tests of snapshot:export and
snapshot:import, through the CLI and the server): the shop's fingerprint, the stock
client and ``mariadb-dump``, and what an import may leave behind."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import zstandard

from tests.helpers.dbstate import databases, db_state
from tests.helpers.shop import Cli, tree

MOUNTS = ("var", "pub/media", "app/etc")
ENV = "develop-branch"


def last_line(res, prefix: str) -> str:
    line = res.stdout.strip().splitlines()[-1]
    assert line.startswith(prefix), res.stdout
    return line[len(prefix):].strip()


def snapshot(cli: Cli) -> str:
    return last_line(cli.run("snapshot:create", "--live"), "Snapshot name:")


def state(mariadb, db: str) -> dict:
    """``db_state`` of ``db`` with the database's own name written `DB`: comparable with
    the state of a copy under another name."""
    conn = mariadb.connect(db)
    try:
        s = db_state(conn, db)
    finally:
        conn.close()
    s["database"] = s["database"].replace(f"`{db}`", "`DB`")
    return s


def trees(root: Path) -> dict[str, dict]:
    return {m: tree(root / m) for m in MOUNTS}


def load_with_client(mariadb, sql: bytes, db: str) -> None:
    res = subprocess.run([*mariadb.client_args(), db], input=sql, capture_output=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr.decode()


def mariadb_dump(mariadb, *args: str) -> bytes:
    tool = shutil.which("mariadb-dump") or shutil.which("mysqldump")
    assert tool, "mariadb-dump is part of the MariaDB install the tests run on"
    return subprocess.run([tool, "--no-defaults", f"--socket={mariadb.socket}",
                           f"--user={mariadb.user}", "--routines", "--events", "--triggers",
                           *args], capture_output=True, check=True, timeout=120).stdout


def damage(mariadb, db: str, root: Path) -> None:
    """Change data and files after the snapshot, so a restore has something to undo."""
    conn = mariadb.connect(db)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM catalog_product_entity WHERE entity_id % 3 = 0")
        cur.execute("UPDATE sales_order SET customer_name = 'changed'")
    conn.close()
    (root / "var" / "log" / "system.log").write_text("changed\n")
    (root / "pub" / "media" / "catalog" / "product" / "img3.jpg").unlink()


def leftovers(mariadb, root: Path) -> tuple[set[str], list[str]]:
    """Scratch databases on the server, and import work directories under .snapkeep and
    private servers of imports still running there."""
    scratch = {d for d in databases(mariadb.connect()) if "__skimport_" in d}
    imports = root / ".snapkeep" / "imports"
    left = sorted(os.listdir(imports)) if imports.is_dir() else []
    return scratch, left + [f"mariadbd {pid}" for pid in private_servers(root)]


def private_servers(root: Path) -> list[int]:
    """The pids of running mariadbd processes whose datadir is under root/.snapkeep."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and any(a.startswith(f"--datadir={root}/.snapkeep/".encode())
                                for a in argv):
            found.append(int(proc.name))
    return found


def unzstd(path: Path) -> bytes:
    with open(path, "rb") as f:
        return zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()
