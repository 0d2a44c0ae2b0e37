"""MySQL engine speed, side by side with mariadb-dump and mydumper, on one private server.

    .venv/bin/python bench/mysql.py --scale 3 [--threads N]

Starts a private mariadbd, generates a Magento-like database (bench/gen_magento.py), and
in one run times: ``mariadb-dump --single-transaction --quick | zstd -3`` and
``mariadb < dump``; ``mydumper -t N -r 100000`` and ``myloader -t N``; snapkeep
``snapshot:create --live`` and ``snapshot:restore`` through the CLI (its default thread
count is the CPU count, which is also N's default). Prints wall times, stored bytes,
snapkeep's writes-held time and peak RSS (create at two database sizes, restore), and
ratios. Before each timed step the server is let settle (dirty pages flushed, undo history
purged), so no tool pays for the work of the step before it. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from snapkeep.sandbox import PrivateMariaDB

REPO = Path(__file__).resolve().parents[1]


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(cmd: list[str] | str, **kw) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) of the process tree's largest process, stdout."""
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                                shell=isinstance(cmd, str), **kw)
        out = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        err.seek(0)
        out += err.read()  # the activity log (writes held, rows) comes on stderr
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed with {proc.returncode}")
    return elapsed, usage.ru_maxrss * 1024, out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--dump-only", action="store_true",
                    help="time the dumps only (no restores, no small-scale RSS run)")
    args = ap.parse_args()
    t = args.threads
    missing = [tool for tool in ("mariadb-dump", "zstd", "mydumper", "myloader")
               if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: install them with "
                         "'apt-get install mariadb-client zstd mydumper'")
    small_scale = max(1, args.scale // 4)
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    with tempfile.TemporaryDirectory() as tmp, PrivateMariaDB(Path(tmp) / "db") as server:
        tmpdir = Path(tmp)
        client = [*server.client_args(), "--default-character-set=utf8mb4"]
        conn_args = ["-h", server.host, "-P", str(server.port), "-u", "root"]

        def gen(db: str, scale: int) -> None:
            subprocess.run([sys.executable, str(REPO / "bench" / "gen_magento.py"), "--scale",
                            str(scale), "--url", server.url(db)], check=True)

        def sql(statement: str) -> None:
            subprocess.run([*client, "-e", statement], check=True)

        def value(statement: str) -> int:
            out = subprocess.run([*client, "-N", "-e", statement], check=True,
                                 capture_output=True, text=True).stdout.split()
            return int(out[-1]) if out else 0

        def settle() -> None:
            """Wait (at most 3 minutes) until InnoDB has flushed and purged what the last
            step wrote, so no timed step pays for the one before it."""
            sql("SET GLOBAL innodb_max_dirty_pages_pct = 0")
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                dirty = value("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
                history = value("SELECT COUNT FROM information_schema.INNODB_METRICS "
                                "WHERE NAME = 'trx_rseg_history_len'")
                if dirty == 0 and history < 100:
                    break
                time.sleep(1)
            sql("SET GLOBAL innodb_max_dirty_pages_pct = 90")

        if not args.dump_only:
            gen("shop_small", small_scale)
        gen("shop", args.scale)

        # snapkeep, through the CLI
        app = tmpdir / "app"
        app.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPKEEP_")}

        def sk(*a: str) -> tuple[float, int, str]:
            return run([sys.executable, "-m", "snapkeep", *a], cwd=app, env=env)

        def init(db: str) -> None:
            shutil.rmtree(app / ".snapkeep", ignore_errors=True)
            for f in app.iterdir():
                f.unlink()
            sk("init", "--project-id", "bench", "-e", "main", "--database", server.url(db))
            cfg = app / "snapkeep.toml"
            cfg.write_text(cfg.read_text().replace('mounts = ["var", "pub/media", "app/etc"]',
                                                   "mounts = []"))

        rss_small = t_restore = rss_restore = t_mload = t_myload = float("nan")
        if not args.dump_only:
            settle()
            init("shop_small")
            _, rss_small, _ = sk("snapshot:create", "--live", "-e", "main")
        settle()
        init("shop")
        t_create, rss_create, out = sk("snapshot:create", "--live", "-e", "main")
        snap = re.search(r"Created backup (\S+)", out).group(1)
        stored = dir_bytes(app / ".snapkeep" / "repository")
        m = re.search(r"writes held for ([0-9.]+) s \(([^)]*)\)", out)
        held, lock = (float(m.group(1)), m.group(2)) if m else (float("nan"), "?")
        m = re.search(r"dumped \d+ tables, (\d+) rows", out)
        rows = int(m.group(1)) if m else -1
        if not args.dump_only:
            settle()
            t_restore, rss_restore, _ = sk("snapshot:restore", snap, "--yes", "-e", "main")

        # mariadb-dump | zstd, mariadb < dump
        dump = tmpdir / "shop.sql.zst"
        settle()
        t_mdump, _, _ = run(f"mariadb-dump --no-defaults --socket={server.socket} -uroot "
                            f"--single-transaction --quick --routines --triggers --events shop "
                            f"| zstd -q -3 -o {dump}")
        if not args.dump_only:
            sql("CREATE DATABASE shop_mdump")
            settle()
            t_mload, _, _ = run(f"zstd -dc {dump} | {' '.join(client)} shop_mdump")
            sql("DROP DATABASE shop_mdump")

        # mydumper / myloader, chunked
        mydir = tmpdir / "mydumper"
        settle()
        t_mydump, _, _ = run(["mydumper", *conn_args, "-B", "shop", "-t", str(t), "-r", "100000",
                              "-o", str(mydir)])
        my_bytes = dir_bytes(mydir)
        if not args.dump_only:
            settle()
            t_myload, _, _ = run(["myloader", *conn_args, "-d", str(mydir), "-B", "shop_myl",
                                  "-t", str(t), "-o"])
            sql("DROP DATABASE shop_myl")

        size = int(subprocess.run([*client, "-N", "-e", "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) "
                                   "FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'"],
                                  check=True, capture_output=True, text=True).stdout)
        print(f"database: scale {args.scale}, {size / 2**20:.0f} MiB InnoDB data+index, {rows} "
              f"rows; threads {t} (snapkeep default = CPU count {os.cpu_count()}); "
              f"innodb_buffer_pool_size 64M")
        w = 12
        print(f"{'':30}{'snapkeep':>{w}}{'mariadb-dump':>{w + 2}}{'mydumper':>{w}}"
              f"{'sk/mdump':>{w}}{'sk/mydumper':>{w}}")
        print(f"{'dump wall (s)':30}{t_create:{w}.2f}{t_mdump:{w + 2}.2f}{t_mydump:{w}.2f}"
              f"{t_create / t_mdump:{w}.2f}{t_create / t_mydump:{w}.2f}")
        print(f"{'restore wall (s)':30}{t_restore:{w}.2f}{t_mload:{w + 2}.2f}{t_myload:{w}.2f}"
              f"{t_restore / t_mload:{w}.2f}{t_restore / t_myload:{w}.2f}")
        zst = dump.stat().st_size
        print(f"{'stored bytes (MiB)':30}{stored / 2**20:{w}.1f}{zst / 2**20:{w + 2}.1f}"
              f"{my_bytes / 2**20:{w}.1f}{stored / zst:{w}.2f}{stored / my_bytes:{w}.2f}")
        print(f"snapkeep writes held during the live snapshot: {held:.3f} s "
              f"({lock})")
        print(f"snapkeep peak RSS: create {rss_create / 2**20:.0f} MiB at scale {args.scale}, "
              f"{rss_small / 2**20:.0f} MiB at scale {small_scale}; restore "
              f"{rss_restore / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
