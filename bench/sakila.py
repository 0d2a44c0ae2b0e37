"""Sakila: snapshot size and create/restore time, side by side with mariadb-dump | zstd.

    .venv/bin/python bench/sakila.py [--corpora ../shared/corpora]

Starts a private mariadbd, loads the Sakila corpus, then in one run measures:
  snapkeep snapshot:create --live, snapkeep snapshot:restore (both through the CLI),
  mariadb-dump --single-transaction --routines --triggers --events | zstd, mariadb < dump.
Prints wall times, sizes and ratios. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from snapkeep.sandbox import PrivateMariaDB

REPO = Path(__file__).resolve().parents[1]

# the row engine (auto, the default, would store this local server's InnoDB as pages)
LOGICAL = 'mounts = []\nengine = "logical"'


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default=str(REPO.parent / "shared" / "corpora"))
    args = ap.parse_args()
    sakila = Path(args.corpora) / "sakila-mariadb"
    with tempfile.TemporaryDirectory() as tmp, PrivateMariaDB(Path(tmp) / "db") as server:
        client = server.client_args() + ["--default-character-set=utf8mb4"]
        for f in ("sakila-mv-schema.sql", "sakila-mv-data.sql"):
            with open(sakila / f, "rb") as src:
                subprocess.run(client, stdin=src, check=True, cwd=sakila)
        app = Path(tmp) / "app"
        app.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPKEEP_")}

        def sk(*a: str) -> str:
            return subprocess.run([sys.executable, "-m", "snapkeep", *a], cwd=app, env=env,
                                  check=True, capture_output=True, text=True).stdout

        sk("init", "--project-id", "bench", "-e", "main", "--database", server.url("sakila"))
        cfg = app / "snapkeep.toml"
        cfg.write_text(cfg.read_text().replace('mounts = ["var", "pub/media", "app/etc"]',
                                               LOGICAL))
        out: list[str] = []
        t_create = timed(lambda: out.append(sk("snapshot:create", "--live", "-e", "main")))
        snap = out[0].strip().splitlines()[-1].split(": ")[1]
        repo_size = dir_bytes(app / ".snapkeep" / "repository")
        sk("snapshot:create", "--live", "-e", "main")  # unchanged database
        repo_size2 = dir_bytes(app / ".snapkeep" / "repository")
        t_restore = timed(lambda: sk("snapshot:restore", snap, "--yes", "-e", "main"))

        dump = Path(tmp) / "sakila.sql.zst"
        dump_cmd = (f"mariadb-dump --no-defaults --socket={server.socket} -uroot "
                    "--single-transaction --routines --triggers --events --databases sakila "
                    f"| zstd -q -3 -o {dump}")
        t_dump = timed(lambda: subprocess.run(dump_cmd, shell=True, check=True))
        load_cmd = (f"zstd -dc {dump} | mariadb --no-defaults --socket={server.socket} -uroot")
        t_load = timed(lambda: subprocess.run(load_cmd, shell=True, check=True))

        print(f"{'':34}{'snapkeep':>12}{'mariadb-dump':>14}{'ratio':>8}")
        print(f"{'create / dump (s)':34}{t_create:12.2f}{t_dump:14.2f}{t_create / t_dump:8.2f}")
        print(f"{'restore / load (s)':34}{t_restore:12.2f}{t_load:14.2f}"
              f"{t_restore / t_load:8.2f}")
        print(f"{'stored bytes (repository / .zst)':34}{repo_size:12d}{dump.stat().st_size:14d}"
              f"{repo_size / dump.stat().st_size:8.2f}")
        print(f"second snapshot of the unchanged database added {repo_size2 - repo_size} bytes "
              f"({100 * (repo_size2 - repo_size) / repo_size:.2f} % of the first)")
        print("(snapkeep times include CLI start-up; its restore loads a shadow database and "
              "swaps it in.)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
