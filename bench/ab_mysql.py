"""A/B cost of two snapkeep source trees on the same data: dump and restore, in process.

    .venv/bin/python bench/ab_mysql.py --scale 2 --runs 5 /tmp/base/src /tmp/new/src

Starts a private mariadbd, generates the Magento-like database once (bench/gen_magento.py),
then runs each tree's ``dump_database`` and ``prepare_restore`` + ``swap`` + ``finish``
in fresh processes (``PYTHONPATH`` = the tree, checked by printing each tree's
``snapkeep.__file__`` and ``_rowpump``; a tree without a built ``_rowpump``, such as
``git archive main | tar -x -C /tmp/old``, gets it built in place), the trees' order
alternated per run, and prints per tree the median and range of wall seconds and of the
snapkeep process's CPU seconds (user + sys) — the CPU time is the steadier figure on a
loaded machine, and what client-side work (such as the row digests) adds — and, for two
trees, the ratios NEW / OLD of the medians. Not part of the test suite. (bench/mysql.py
--trees compares two trees through the CLI, beside nothing else.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import print_header, round_order
from trees import check_trees, tree_env

from snapkeep.sandbox import PrivateMariaDB

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
from snapkeep.engines.mysql import MySQLTarget, dump_database, prepare_restore
from snapkeep.progress import NullReporter
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend

host, port, db, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
target = MySQLTarget(host, port, "root", None, db)

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

with tempfile.TemporaryDirectory() as tmp:
    repo = Repository.init(LocalBackend(Path(tmp) / "repo"))
    w, c = time.perf_counter(), cpu()
    d = dump_database(target, repo, NullReporter(), threads=threads)
    dump = (time.perf_counter() - w, cpu() - c)
    w, c = time.perf_counter(), cpu()
    p = prepare_restore(target, d, repo, NullReporter(), threads=threads)
    p.swap()
    p.finish()
    restore = (time.perf_counter() - w, cpu() - c)
print(json.dumps({"dump": dump, "restore": restore,
                  "digests": sum("digest" in t for t in d["tables"])}))
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("trees", nargs="+", type=Path, help="src directories to compare")
    args = ap.parse_args()
    print_header({"mariadbd": ["mariadbd", "--version"]},
                 [f"runs: {args.runs}; tree order alternated per run"],
                 "cache: no warm-up step; each process dumps the database the previous one "
                 "just restored, in the same state for both trees")
    check_trees(args.trees)
    results: dict[str, dict[str, list[tuple[float, float]]]] = {
        str(t): {"dump": [], "restore": []} for t in args.trees}
    with tempfile.TemporaryDirectory() as tmp, PrivateMariaDB(Path(tmp) / "db") as server:
        subprocess.run([sys.executable, str(REPO / "bench" / "gen_magento.py"), "--scale",
                        str(args.scale), "--url", server.url("shop")], check=True)
        for run in range(1, args.runs + 1):
            for tree in round_order(args.trees, run):
                env = tree_env(tree)
                out = subprocess.run([sys.executable, "-c", CHILD, server.host,
                                      str(server.port), "shop", str(args.threads)],
                                     env=env, check=True,
                                     capture_output=True, text=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                for step in ("dump", "restore"):
                    results[str(tree)][step].append(tuple(r[step]))
                print(f"run {run} {tree}: dump {r['dump'][0]:.2f} s wall "
                      f"{r['dump'][1]:.2f} s cpu, restore {r['restore'][0]:.2f} s wall "
                      f"{r['restore'][1]:.2f} s cpu, {r['digests']} digests", flush=True)
    print(f"scale {args.scale}, {args.threads} threads, {args.runs} runs; median [min-max]")
    for tree, steps in results.items():
        for step, values in steps.items():
            wall = [v[0] for v in values]
            cpu = [v[1] for v in values]
            print(f"{tree:40} {step:8} wall {statistics.median(wall):6.2f} "
                  f"[{min(wall):.2f}-{max(wall):.2f}]  cpu {statistics.median(cpu):6.2f} "
                  f"[{min(cpu):.2f}-{max(cpu):.2f}]")
    if len(args.trees) == 2:
        old, new = (results[str(t)] for t in args.trees)
        for step in ("dump", "restore"):
            for i, what in enumerate(("wall", "cpu")):
                a = statistics.median(v[i] for v in old[step])
                b = statistics.median(v[i] for v in new[step])
                print(f"NEW / OLD {step:8} {what}: {b / a:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
