"""The physical path (docs/physical.md) beside the tools it replaces: medians of N.

    .venv/bin/python bench/physical.py [--scale 3] [--runs 3] [--threads 2]

Starts a private mariadbd, generates the Magento-like bench shop (bench/gen_magento.py)
and, in each of ``--runs`` rounds, times:

- snapshot: snapkeep ``snapshot:create --live`` with ``engine = "physical"`` and with
  ``engine = "logical"`` (each into a fresh repository), and the physical one without
  ``--live`` (writes held, the tablespaces read in place; restored below) against
  ``mariadb-backup --backup --stream=mbstream --databases=shop | zstd -3`` and
  ``mydumper -t N -r 100000``;
- restore: snapkeep ``snapshot:restore`` (in place) of each, against ``myloader -t N`` into
  a new database and against the physical limit: ``mariadb-backup --copy-back`` of a
  prepared full backup into an empty data directory plus the start of a server on it
  (until it accepts connections);
- the second snapshot of the unchanged database (physical), its bytes added; then the
  same after updating 1 % of the orders — the newest ones (contiguous in the key, as a
  shop's day of changes), then every 100th (spread: most of the table's pages change).

Inputs are warmed for every tool as in bench/mysql.py; each figure is the median with
its spread; the header names the command and machine, with the load average before and
after. Not part of the test suite.

Memory (``--memory``): on this machine kind the guest hands freed memory back to its host
(virtio_balloon's free page reporting, about 2 s after a free), and the first touch of
such a page costs a host fault: ``cp`` of the bench shop's 1.6 GB of ``.ibd`` files took
0.45 s into memory freed a moment before and 1.9-2.3 s after 3 s idle. Every tool here
writes ~1.5 GB of new files, so which one ran right after a large free (a restore's drop
of the replaced tables, ``rm`` of the last copy-back) decided a second of its time.
``cold`` (default) waits ``COLD_SECONDS`` before every timed step so every tool writes
into memory handed back; ``as-is`` does not wait (the earlier figures).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from measure import Row, Samples, Timed, print_header, print_table, round_order, timed, warm
from mysql import Bench, Mydumper, Snapkeep, gen

from snapkeep.sandbox import PrivateMariaDB

MIB = 2**20
COLD_SECONDS = 5.0  # free page reporting hands freed memory back after ~2 s
COLD = True  # --memory cold
ROWS = [Row("snapshot, live (s)", "dump"), Row("snapshot, writes held (s)", "dump_held"),
        Row("restore (s)", "restore"),
        Row("stored (MiB)", "stored", MIB, 1), Row("peak RSS, snapshot (MiB)", "rss_dump", MIB, 0),
        Row("peak RSS, restore (MiB)", "rss_restore", MIB, 0),
        Row("2nd snapshot added (MiB)", "added", MIB, 2),
        Row("then 1 % of orders updated, newest: added (MiB)", "added_newest", MIB, 2),
        Row("then 1 % of orders updated, spread: added (MiB)", "added_spread", MIB, 2)]


class Engine(Snapkeep):
    """snapkeep with ``engine`` set in its environment."""

    def __init__(self, b: Bench, engine: str) -> None:
        super().__init__(b, f"snapkeep-{engine}")
        self.engine = engine

    def fresh(self, db: str = "shop") -> None:
        super().fresh(db)
        cfg = self.app / "snapkeep.toml"
        text = cfg.read_text()
        cfg.write_text(text.replace('engine = "logical"', f'engine = "{self.engine}"', 1))

    def dump_held(self) -> Timed:
        """The default snapshot (not ``--live``): writes held, tablespaces read in place."""
        r = self.sk("snapshot:create", "-e", "main")
        m = re.search(r"Created backup (\S+)", r.output)
        if not m:
            raise SystemExit(f"no snapshot id in:\n{r.output[-2000:]}")
        self.snap, self.log = m.group(1), r.output
        return r

    def added(self) -> int | None:
        before = self.stored()
        r = self.sk("snapshot:create", "--live", "-e", "main")
        if "Created backup" not in r.output:
            raise SystemExit(r.output[-2000:])
        return self.stored() - before


class MariaBackup:
    """``mariadb-backup --backup --stream | zstd -3``; restored by ``--copy-back`` of a
    prepared full backup into an empty data directory and a server started on it."""

    name = "mariadb-backup"

    def __init__(self, b: Bench) -> None:
        self.b = b
        self.file = b.tmp / "shop.mbstream.zst"
        self.full = b.tmp / "full-backup"
        self.copy = b.tmp / "copy-back"

    def _login(self) -> list[str]:
        return ["--user=root", f"--socket={self.b.server.socket}"]

    def fresh(self) -> None:
        self.file.unlink(missing_ok=True)

    def dump(self) -> Timed:
        return timed(f"mariadb-backup {' '.join(self._login())} --backup --stream=mbstream "
                     f"--databases=shop --parallel={self.b.threads} --target-dir="
                     f"{self.b.tmp} 2>/dev/null | zstd -q -3 -T{self.b.threads} -o {self.file}")

    def added(self) -> int | None:
        return None

    def held(self) -> float | None:
        return None

    def stored(self) -> int:
        return self.file.stat().st_size

    def inputs(self) -> list[Path]:
        if not self.full.exists():  # prepared once, untimed: what --copy-back starts from
            subprocess.run(["mariadb-backup", *self._login(), "--backup",
                            f"--target-dir={self.full}", f"--parallel={self.b.threads}"],
                           check=True, capture_output=True)
            subprocess.run(["mariadb-backup", "--prepare", f"--target-dir={self.full}"],
                           check=True, capture_output=True)
        return [self.full]

    def restore(self) -> Timed:
        shutil.rmtree(self.copy, ignore_errors=True)
        (self.copy / "data").mkdir(parents=True)
        started = time.monotonic()
        r = timed(["mariadb-backup", "--copy-back", f"--target-dir={self.full}",
                   f"--datadir={self.copy / 'data'}", f"--parallel={self.b.threads}"])
        server = PrivateMariaDB(self.copy, networking=False)
        server.start()
        seconds = time.monotonic() - started
        server.stop()
        return Timed(seconds, r.rss, r.output)

    def after_restore(self) -> None:
        shutil.rmtree(self.copy, ignore_errors=True)


Tool = Engine | MariaBackup | Mydumper


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cold() -> None:
    """With ``--memory cold``: wait until memory freed by the last step is the host's again,
    so no timed step starts with another's freed pages (see the module's doc)."""
    if COLD:
        time.sleep(COLD_SECONDS)


def one_round(n: int, tools: list[Tool], b: Bench, samples: Samples) -> None:
    order = round_order(tools, n)
    for t in order:
        t.fresh()
    for t in order:
        b.settle()
        b.warm_db("shop")
        cold()
        r = t.dump()
        samples.add(t.name, "dump", r.seconds)
        samples.add(t.name, "rss_dump", r.rss)
        samples.add(t.name, "stored", t.stored())
        if isinstance(t, Engine) and t.engine == "physical":
            pages = re.search(r"stored (\d+) InnoDB tables as pages", t.log)
            print(f"round {n}: {pages.group(1) if pages else 0} tables as pages", flush=True)
            b.settle()
            added = t.added()  # the unchanged database again, into the same repository
            if added is not None:
                samples.add(t.name, "added", added)
            # 1 % of the orders changed: the newest (a shop's day: contiguous in the key),
            # then spread over the whole table (every 100th: most pages touched)
            orders = b.value("SELECT COUNT(*) FROM shop.sales_order")
            top = b.value("SELECT MAX(entity_id) FROM shop.sales_order")
            for key, where in (("added_newest", f"entity_id > {top - orders // 100}"),
                               ("added_spread", f"entity_id % 100 = {n}")):
                b.sql(f"UPDATE shop.sales_order SET status = 'complete{n}', "
                      f"updated_at = NOW() WHERE {where}")
                b.settle()
                more = t.added()
                if more is not None:
                    samples.add(t.name, key, more)
            t.fresh()  # into an empty repository again; the restore below restores it
            b.settle()
            b.warm_db("shop")
            cold()
            samples.add(t.name, "dump_held", t.dump_held().seconds)
    for t in order:
        b.settle()
        warm(t.inputs())
        cold()
        r = t.restore()
        samples.add(t.name, "restore", r.seconds)
        imported = re.search(r"imported \d+ InnoDB tables as pages .* in ([0-9.]+) s", r.output)
        if imported:
            print(f"round {n}: {t.name} restore {r.seconds:.2f} s, of which importing "
                  f"{imported.group(1)} s", flush=True)
        samples.add(t.name, "rss_restore", r.rss)
        t.after_restore()
    print(f"round {n}: " + "; ".join(
        f"{t.name} snapshot {samples.values[(t.name, 'dump')][-1]:.2f} s, restore "
        f"{samples.values[(t.name, 'restore')][-1]:.2f} s" for t in tools)
        + f"; load average {loadavg()}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tools", default="physical,logical,mariadb-backup,mydumper",
                    help="which to run, comma-separated (for a quicker partial run)")
    ap.add_argument("--memory", choices=("cold", "as-is"), default="cold",
                    help="wait before every timed step until freed memory is the host's "
                         "again (cold), or not (as-is); see the module's doc")
    args = ap.parse_args()
    global COLD
    COLD = args.memory == "cold"
    for tool in ("mariadb-backup", "zstd", "mydumper", "myloader"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    print_header({"mariadb-backup": ["mariadb-backup", "--version"],
                  "mydumper": ["mydumper", "-V"]},
                 [])
    with tempfile.TemporaryDirectory(prefix="snapkeep-bench-physical-") as tmp:
        server = PrivateMariaDB(Path(tmp) / "server").start()
        try:
            b = Bench(server, Path(tmp), args.threads)
            gen(b, "shop", args.scale)
            size = b.value("SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM "
                           "information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'")
            every: list[Tool] = [Engine(b, "physical"), Engine(b, "logical"),
                                 MariaBackup(b), Mydumper(b)]
            wanted = args.tools.split(",")
            tools = [t for t in every if t.name.removeprefix("snapkeep-") in wanted]
            samples = Samples()
            for n in range(1, args.runs + 1):
                one_round(n, tools, b, samples)
            log = getattr(tools[0], "log", "")
            m = re.search(r"stored (\d+) InnoDB tables as pages", log)
            print(f"\ndatabase: scale {args.scale}, {size / MIB:.0f} MiB InnoDB data+index; "
                  f"{m.group(1) if m else '?'} tables as pages; {args.threads} threads for "
                  f"every tool; memory {args.memory}; load average after: {loadavg()}")
            print_table(samples, ROWS, [t.name for t in tools],
                        "median (min–max) of the rounds; ratios = first column / tool")
            print(f"\nmariadb-backup: snapshot = `mariadb-backup --backup --stream=mbstream "
                  f"--databases=shop | zstd -3`; restore = `--copy-back` of a prepared full "
                  f"backup + server start. mydumper = `mydumper -t {args.threads} -r 100000`, "
                  f"restored by `myloader -t {args.threads}`. snapkeep restores in place "
                  f"(shadow + cut-over), --threads default.")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
