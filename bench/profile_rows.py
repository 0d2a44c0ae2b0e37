"""Where the row path's time goes: wall time, snapkeep's CPU and the server's CPU for a dump
and a restore of the bench shop, and (with py-spy installed) snapkeep's hottest functions.

    .venv/bin/python bench/profile_rows.py [--scale 3] [--threads 2] [--runs 3] [--py-spy]

Starts a private mariadbd, generates the Magento-like shop (bench/gen_magento.py), then per
run dumps it and restores it in a fresh process, reading the server's CPU time from
/proc/PID/stat before and after each step. A step whose snapkeep CPU is far below its wall
time while the server's CPU is near ``threads`` × wall is bound by the server; the other
way round, by snapkeep. ``--py-spy`` records one more run of each step with
``py-spy record --format raw`` (folded stacks) and prints the functions with the most
samples (own time). Figures are medians of ``--runs`` with min–max. Not part of the suite.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import print_header

from snapkeep.sandbox import PrivateMariaDB

REPO = Path(__file__).resolve().parents[1]
# A dump, then a restore of that dump, in a fresh process; the server's CPU time is read from
# /proc around each step (the server runs on this host).
CHILD = r"""
import json, os, resource, sys, tempfile, time
from pathlib import Path
from snapkeep.engines.mysql import MySQLTarget, dump_database, prepare_restore
from snapkeep.progress import NullReporter
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend

host, port, db, threads, server_pid = sys.argv[1], int(sys.argv[2]), sys.argv[3], \
    int(sys.argv[4]), int(sys.argv[5])
target = MySQLTarget(host, port, "root", None, db)
TICK = os.sysconf("SC_CLK_TCK")

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

def server_cpu():
    fields = open(f"/proc/{server_pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK

def step(fn):
    w, c, s = time.perf_counter(), cpu(), server_cpu()
    out = fn()
    return out, [time.perf_counter() - w, cpu() - c, server_cpu() - s]

with tempfile.TemporaryDirectory() as tmp:
    repo = Repository.init(LocalBackend(Path(tmp) / "repo"))
    d, dump = step(lambda: dump_database(target, repo, NullReporter(), threads=threads,
                                         writes_held=False))
    def restore():
        p = prepare_restore(target, d, repo, NullReporter(), threads=threads)
        p.swap()
        p.finish()
    _, rest = step(restore)
print(json.dumps({"dump": dump, "restore": rest}))
"""


def run_child(server: PrivateMariaDB, threads: int, prefix: list[str]) -> dict:
    out = subprocess.run([*prefix, sys.executable, "-c", CHILD, server.host, str(server.port),
                          "shop", str(threads), str(server.pid)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(next(ln for ln in reversed(out.splitlines()) if ln.startswith("{")))


def own_time(folded: Path, top: int) -> list[tuple[int, str]]:
    """The functions with the most samples at the top of their stacks."""
    counts: collections.Counter[str] = collections.Counter()
    for line in folded.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if n.isdigit():
            counts[stack.rsplit(";", 1)[-1]] += int(n)
    total = sum(counts.values()) or 1
    return [(100 * n // total, name) for name, n in counts.most_common(top)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--py-spy", action="store_true")
    args = ap.parse_args()
    print_header({"mariadbd": ["mariadbd", "--version"]}, [f"runs: {args.runs}"],
                 "cache: each run dumps what the previous run restored (warm buffer pool)")
    results: dict[str, list[list[float]]] = {"dump": [], "restore": []}
    with tempfile.TemporaryDirectory() as tmp, PrivateMariaDB(Path(tmp) / "db") as server:
        subprocess.run([sys.executable, str(REPO / "bench" / "gen_magento.py"), "--scale",
                        str(args.scale), "--url", server.url("shop")], check=True)
        for run in range(1, args.runs + 1):
            r = run_child(server, args.threads, [])
            for step in results:
                results[step].append(r[step])
            print(f"run {run}: " + "; ".join(
                f"{s} {v[0]:.2f} s wall, snapkeep {v[1]:.2f} s cpu, server {v[2]:.2f} s cpu"
                for s, v in r.items()), flush=True)
        print(f"\nscale {args.scale}, {args.threads} threads; median (min–max) of {args.runs}")
        print("| step | wall (s) | snapkeep CPU (s) | server CPU (s) |\n|---|---|---|---|")
        for step, values in results.items():
            cells = []
            for i in range(3):
                col = [v[i] for v in values]
                cells.append(f"{statistics.median(col):.2f} ({min(col):.2f}–{max(col):.2f})")
            print(f"| {step} | " + " | ".join(cells) + " |")
        if args.py_spy:
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            folded = Path(tmp) / "rows.folded"
            run_child(server, args.threads, [spy, "record", "--format", "raw", "--rate",
                                             "250", "--subprocesses", "-o", str(folded),
                                             "--"])
            print("\nsnapkeep's own time, dump and restore together (py-spy samples):")
            for pct, name in own_time(folded, 15):
                print(f"  {pct:3d} %  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
