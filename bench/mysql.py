"""MySQL engine speed beside mariadb-dump and mydumper, on one private server: medians of N.

    .venv/bin/python bench/mysql.py [--scale 3] [--runs 3] [--threads N] [--dump-only]
    .venv/bin/python bench/mysql.py --trees OLD/src NEW/src [--scale 3] [--runs 3]

Starts a private mariadbd, generates a Magento-like database (bench/gen_magento.py) and, in
each of ``--runs`` rounds, times: snapkeep ``snapshot:create --live`` into a fresh
repository and ``snapshot:restore`` (in place) through the CLI (its default thread count is
the CPU count, which is also N's default); ``mariadb-dump --single-transaction --quick |
zstd -3`` and ``zstd -dc | mariadb`` into a new database; ``mydumper -t N -r 100000`` and
``myloader -t N`` into a new database. The tools take turns in alternating order (snapkeep
first in odd rounds, last in even ones). Before each timed step the server is let settle
(dirty pages flushed, undo history purged) and the step's input is warmed the same way for
every tool: for a dump every table of the database is read through (CHECKSUM TABLE) and its
files read; for a restore the dump or repository is read fully. Every figure is the median
of the rounds with its spread (min–max); ratios are medians over medians. Also printed:
stored bytes, snapkeep's writes-held time, peak RSS of every tool (snapkeep's create also
once at a quarter of the scale, to show that it stays flat).

A/B mode (``--trees OLD/src NEW/src``): no reference tools; snapkeep runs from each source
tree (``PYTHONPATH`` = the tree, checked by printing each tree's ``snapkeep.__file__`` and
``_rowpump``; a tree without a built ``_rowpump`` gets it built in place), alternating, and
the table gives NEW, OLD and NEW / OLD. (bench/ab_mysql.py compares trees in process, with
CPU seconds.)

The output starts with the command that reproduces the run and the machine, and ends with a
markdown table ready to paste in a note. Not part of the test suite.
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
from dataclasses import dataclass
from pathlib import Path

from measure import Row, Samples, Timed, print_header, print_table, round_order, timed, warm
from trees import check_trees, tree_env

from snapkeep.sandbox import PrivateMariaDB

REPO = Path(__file__).resolve().parents[1]
WARM_NOTE = ("cache: warm for every tool (before each dump every table of shop is read through "
             "with CHECKSUM TABLE and its files read; before each restore the dump or "
             "repository is read fully; dropping caches is not possible in this container)")
MIB = 2**20
ROWS = [Row("dump (s)", "dump"), Row("restore (s)", "restore"),
        Row("stored (MiB)", "stored", MIB, 1), Row("peak RSS, dump (MiB)", "rss_dump", MIB, 0),
        Row("peak RSS, restore (MiB)", "rss_restore", MIB, 0),
        Row("writes held (s)", "held", 1, 3)]

# the row engine (auto, the default, would store this local server's InnoDB as pages)
LOGICAL = 'mounts = []\nengine = "logical"'


@dataclass
class Bench:
    """The private server, the scratch directory and the thread count of every tool."""

    server: PrivateMariaDB
    tmp: Path
    threads: int

    @property
    def client(self) -> list[str]:
        return [*self.server.client_args(), "--default-character-set=utf8mb4"]

    def sql(self, statement: str) -> str:
        return subprocess.run([*self.client, "-N", "-e", statement], check=True,
                              capture_output=True, text=True).stdout

    def value(self, statement: str) -> int:
        out = self.sql(statement).split()
        return int(out[-1]) if out else 0

    def settle(self) -> None:
        """Wait (at most 3 minutes) until InnoDB has flushed and purged what the last step
        wrote, so no timed step pays for the one before it."""
        self.sql("SET GLOBAL innodb_max_dirty_pages_pct = 0")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            dirty = self.value("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
            history = self.value("SELECT COUNT FROM information_schema.INNODB_METRICS "
                                 "WHERE NAME = 'trx_rseg_history_len'")
            if dirty == 0 and history < 100:
                break
            time.sleep(1)
        self.sql("SET GLOBAL innodb_max_dirty_pages_pct = 90")

    def warm_db(self, db: str) -> None:
        """Read every table of ``db`` through, then its files, in the same order each time."""
        tables = self.sql("SELECT TABLE_NAME FROM information_schema.TABLES WHERE "
                          f"TABLE_SCHEMA = '{db}' AND TABLE_TYPE = 'BASE TABLE' "
                          "ORDER BY TABLE_NAME").split()
        if tables:
            self.sql(f"CHECKSUM TABLE {', '.join(f'`{db}`.`{t}`' for t in tables)}")
        warm([self.server.datadir / db])


class Snapkeep:
    """snapkeep through its CLI, from the installed package or a source tree (A/B)."""

    def __init__(self, b: Bench, name: str = "snapkeep", tree: Path | None = None) -> None:
        self.b, self.name = b, name
        self.app = b.tmp / f"app-{name}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPKEEP_")}
        self.env = tree_env(tree, env) if tree else env
        self.snap = ""
        self.log = ""

    def sk(self, *a: str) -> Timed:
        return timed([sys.executable, "-m", "snapkeep", *a], self.app, self.env)

    def fresh(self, db: str = "shop") -> None:
        shutil.rmtree(self.app, ignore_errors=True)
        self.app.mkdir()
        self.sk("init", "--project-id", "bench", "-e", "main", "--database",
                self.b.server.url(db))
        cfg = self.app / "snapkeep.toml"
        cfg.write_text(cfg.read_text().replace('mounts = ["var", "pub/media", "app/etc"]',
                                               LOGICAL))

    def dump(self) -> Timed:
        r = self.sk("snapshot:create", "--live", "-e", "main")
        m = re.search(r"Created backup (\S+)", r.output)
        if not m:
            raise SystemExit(f"no snapshot id in:\n{r.output[-2000:]}")
        self.snap, self.log = m.group(1), r.output
        return r

    def held(self) -> float | None:
        m = re.search(r"writes held for ([0-9.]+) s", self.log)
        return float(m.group(1)) if m else float("nan")

    def stored(self) -> int:
        return dir_bytes(self.app / ".snapkeep" / "repository")

    def inputs(self) -> list[Path]:
        return [self.app / ".snapkeep"]

    def restore(self) -> Timed:
        return self.sk("snapshot:restore", self.snap, "--yes", "-e", "main")

    def after_restore(self) -> None:
        pass


class MariaDump:
    name = "mariadb-dump"

    def __init__(self, b: Bench) -> None:
        self.b, self.file = b, b.tmp / "shop.sql.zst"

    def fresh(self) -> None:
        self.file.unlink(missing_ok=True)

    def dump(self) -> Timed:
        return timed(f"mariadb-dump --no-defaults --socket={self.b.server.socket} -uroot "
                     f"--single-transaction --quick --routines --triggers --events shop "
                     f"| zstd -q -3 -o {self.file}")

    def held(self) -> float | None:
        return None

    def stored(self) -> int:
        return self.file.stat().st_size

    def inputs(self) -> list[Path]:
        return [self.file]

    def restore(self) -> Timed:
        self.b.sql("CREATE DATABASE shop_mdump")
        return timed(f"zstd -dc {self.file} | {' '.join(self.b.client)} shop_mdump")

    def after_restore(self) -> None:
        self.b.sql("DROP DATABASE shop_mdump")


class Mydumper:
    name = "mydumper"

    def __init__(self, b: Bench) -> None:
        self.b, self.dir = b, b.tmp / "mydumper"
        s = b.server
        self.conn = ["-h", s.host, "-P", str(s.port), "-u", "root"]

    def fresh(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def dump(self) -> Timed:
        return timed(["mydumper", *self.conn, "-B", "shop", "-t", str(self.b.threads),
                      "-r", "100000", "-o", str(self.dir)])

    def held(self) -> float | None:
        return None

    def stored(self) -> int:
        return dir_bytes(self.dir)

    def inputs(self) -> list[Path]:
        return [self.dir]

    def restore(self) -> Timed:
        return timed(["myloader", *self.conn, "-d", str(self.dir), "-B", "shop_myl",
                      "-t", str(self.b.threads), "-o"])

    def after_restore(self) -> None:
        self.b.sql("DROP DATABASE shop_myl")


Tool = Snapkeep | MariaDump | Mydumper


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def one_round(n: int, tools: list[Tool], b: Bench, samples: Samples, restores: bool) -> None:
    order = round_order(tools, n)
    for t in order:
        t.fresh()
    for t in order:
        b.settle()
        b.warm_db("shop")
        r = t.dump()
        samples.add(t.name, "dump", r.seconds)
        samples.add(t.name, "rss_dump", r.rss)
        samples.add(t.name, "stored", t.stored())
        if (held := t.held()) is not None:
            samples.add(t.name, "held", held)
    for t in order if restores else []:
        b.settle()
        warm(t.inputs())
        r = t.restore()
        samples.add(t.name, "restore", r.seconds)
        samples.add(t.name, "rss_restore", r.rss)
        t.after_restore()
    print(f"round {n} (order {', '.join(t.name for t in order)}): " + "; ".join(
        f"{t.name} dump {samples.values[(t.name, 'dump')][-1]:.2f} s"
        + (f", restore {samples.values[(t.name, 'restore')][-1]:.2f} s" if restores else "")
        for t in tools), flush=True)


def small_rss(b: Bench, sks: list[Snapkeep], scale: int) -> dict[str, int]:
    """Peak RSS of each snapkeep's create of a database at ``scale``."""
    gen(b, "shop_small", scale)
    rss: dict[str, int] = {}
    for t in sks:
        t.fresh("shop_small")
        b.settle()
        rss[t.name] = t.dump().rss
    b.sql("DROP DATABASE shop_small")
    return rss


def gen(b: Bench, db: str, scale: int) -> None:
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_magento.py"), "--scale",
                    str(scale), "--url", b.server.url(db)], check=True)


def report(samples: Samples, b: Bench, sks: list[Snapkeep], names: list[str],
           args: argparse.Namespace,
           rss_small: dict[str, int]) -> None:
    size = b.value("SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES "
                   "WHERE TABLE_SCHEMA = 'shop'")
    rows = re.search(r"dumped \d+ tables, (\d+) rows", sks[0].log)
    print(f"\ndatabase: scale {args.scale}, {size / MIB:.0f} MiB InnoDB data+index, "
          f"{rows.group(1) if rows else '?'} rows; threads {b.threads} for every tool "
          f"(snapkeep's default = CPU count {os.cpu_count()}); innodb_buffer_pool_size 64M")
    small = max(1, args.scale // 4)
    for name, rss in rss_small.items():
        print(f"{name} peak RSS of create: {rss / MIB:.0f} MiB at scale {small}, "
              f"{samples.cell(name, 'rss_dump', MIB, 0)} MiB at scale {args.scale}")
    if args.trees:
        print_table(samples, ROWS, list(reversed(names)),
                    "NEW vs OLD, median (min–max) of the rounds; ratio = NEW / OLD")
        return
    print_table(samples, ROWS, names, "median (min–max) of the rounds; ratios = snapkeep / "
                "tool, from the medians")
    print(f"\nmariadb-dump = `mariadb-dump --single-transaction --quick | zstd -3`, restored "
          f"by `zstd -dc | mariadb`; mydumper = `mydumper -t {b.threads} -r 100000`, restored "
          f"by `myloader -t {b.threads}`.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--dump-only", action="store_true",
                    help="time the dumps only (no restores, no small-scale RSS run)")
    ap.add_argument("--trees", nargs=2, type=Path, metavar=("OLD", "NEW"),
                    help="A/B: run snapkeep from these two src directories instead")
    args = ap.parse_args()
    missing = [tool for tool in ("mariadb-dump", "zstd", "mydumper", "myloader")
               if shutil.which(tool) is None]
    if missing and not args.trees:
        raise SystemExit(f"missing {', '.join(missing)}: install them with "
                         "'apt-get install mariadb-client zstd mydumper'")
    versions = {"mariadbd": ["mariadbd", "--version"]}
    if not args.trees:
        versions |= {"mariadb-dump": ["mariadb-dump", "--version"], "zstd": ["zstd", "--version"],
                     "mydumper": ["mydumper", "-V"], "myloader": ["myloader", "-V"]}
    print_header(versions,
                 [f"rounds: {args.runs}; order alternated per round; the server settles "
                  "before every timed step"], WARM_NOTE)
    labels = check_trees(args.trees) if args.trees else []
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    with tempfile.TemporaryDirectory() as tmp, PrivateMariaDB(Path(tmp) / "db") as server:
        b = Bench(server, Path(tmp), args.threads)
        sks = ([Snapkeep(b, label, tree) for label, tree in zip(labels, args.trees, strict=True)]
               if args.trees else [Snapkeep(b)])
        rss_small = {} if args.dump_only else small_rss(b, sks, max(1, args.scale // 4))
        gen(b, "shop", args.scale)
        tools: list[Tool] = list(sks)
        if not args.trees:
            tools += [MariaDump(b), Mydumper(b)]
        samples = Samples()
        for n in range(1, args.runs + 1):
            one_round(n, tools, b, samples, not args.dump_only)
        report(samples, b, sks, [t.name for t in tools], args, rss_small)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
