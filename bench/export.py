"""Export speed: snapkeep's SQL export of a snapshot against mariadb-dump, on one database.

    .venv/bin/python bench/export.py --scale 9     # ~1 GiB of InnoDB data + index

Starts a private mariadbd, generates the Magento-like database of bench/gen_magento.py,
dumps it into a fresh repository (``dump_database``, timed but not compared), then times

- ``mariadb-dump --single-transaction --quick --routines --triggers --events | zstd -3``
  into a file, and
- ``export_sql`` from the repository through zstd level 3 (python-zstandard, one worker
  thread, as the export service would wrap it) into a file,

and prints both wall times, the output sizes and the ratio. Before the mariadb-dump run the
server is let settle (dirty pages flushed), so it does not pay for the generator's writes.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

from snapkeep.engines.mysql import MySQLTarget, dump_database
from snapkeep.engines.mysql.export import export_sql
from snapkeep.progress import NullReporter
from snapkeep.repository import Repository
from snapkeep.sandbox import PrivateMariaDB
from snapkeep.storage import LocalBackend

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=9)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, PrivateMariaDB(Path(tmp) / "db") as server:
        tmpdir = Path(tmp)
        client = [*server.client_args(), "--default-character-set=utf8mb4"]
        subprocess.run([sys.executable, str(REPO / "bench" / "gen_magento.py"), "--scale",
                        str(args.scale), "--url", server.url("shop")], check=True)

        repo = Repository.init(LocalBackend(tmpdir / "repo"))
        started = time.perf_counter()
        description = dump_database(MySQLTarget(server.host, server.port, "root", None, "shop"),
                                    repo, NullReporter())
        repo.flush()
        t_dump = time.perf_counter() - started

        subprocess.run([*client, "-e", "SET GLOBAL innodb_max_dirty_pages_pct = 0"], check=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            out = subprocess.run([*client, "-N", "-e", "SHOW GLOBAL STATUS LIKE "
                                  "'Innodb_buffer_pool_pages_dirty'"], check=True,
                                 capture_output=True, text=True).stdout.split()
            if not out or int(out[-1]) == 0:
                break
            time.sleep(1)

        mdump = tmpdir / "mdump.sql.zst"
        subprocess.run(["sync"], check=True)
        started = time.perf_counter()
        subprocess.run(f"mariadb-dump --no-defaults --socket={server.socket} -uroot "
                       f"--single-transaction --quick --routines --triggers --events shop "
                       f"| zstd -q -3 -o {mdump}", shell=True, check=True)
        t_mdump = time.perf_counter() - started

        exported = tmpdir / "database.sql.zst"
        subprocess.run(["sync"], check=True)
        started = time.perf_counter()
        with exported.open("wb") as f:
            compressor = zstandard.ZstdCompressor(level=3, threads=1)
            with compressor.stream_writer(f, closefd=False) as out:
                export_sql(description, repo, out, NullReporter())
        t_export = time.perf_counter() - started

        rows = description["size_bytes"]
        print(f"database: scale {args.scale}, {rows / 2**20:.0f} MiB of stored rows "
              f"(dump into the repository: {t_dump:.2f} s)")
        print(f"{'':34}{'wall (s)':>10}{'output (MiB)':>14}")
        print(f"{'mariadb-dump | zstd -3':34}{t_mdump:10.2f}"
              f"{os.path.getsize(mdump) / 2**20:14.1f}")
        print(f"{'snapkeep export_sql + zstd 3':34}{t_export:10.2f}"
              f"{os.path.getsize(exported) / 2**20:14.1f}")
        print(f"export / mariadb-dump: {t_export / t_mdump:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
