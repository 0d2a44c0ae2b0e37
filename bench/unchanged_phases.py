"""Where an unchanged re-snapshot's time goes: wall time of each step, in process.

    cd APP && PYTHONPATH=TREE/src .venv/bin/python bench/unchanged_phases.py [--runs 5]

``APP`` is a project whose mounts hold one snapshot already (bench/startup.py's app, or
bench/media.py's with its state moved in). Each run is a fresh interpreter running
``snapkeep snapshot:create --live -e main`` with timers wrapped around the steps named in
``STEPS`` (a function wrapped wherever it was imported by name); the imports up to the
command are timed as one step. Prints median (min–max) milliseconds per step. The figures
are in docs/performance.md ("Unchanged re-snapshot, second pass"). Not part of the test
suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

STEPS = [
    ("snapkeep.config.load", "load_config", "config load"),
    ("snapkeep.catalog.catalog", "Catalog.__init__", "catalog open + schema check"),
    ("snapkeep.repository.repository", "Repository.open", "repository open + index load"),
    ("snapkeep.services.activities.claims", "claim", "activity claim"),
    ("snapkeep.catalog.catalog", "Catalog.update_activity", "catalog: activity updates"),
    ("snapkeep.catalog.catalog", "Catalog.append_log", "catalog: log lines"),
    ("snapkeep.engines.volumes.snapshot", "measure_mount", "progress total walk"),
    ("snapkeep.services.snapshots.backup", "_parent_mounts", "parent snapshot"),
    ("snapkeep.services.gitinfo", "head_commit", "git HEAD"),
    ("snapkeep.engines.volumes.snapshot", "_load_cache", "files cache load"),
    ("snapkeep.engines.volumes.snapshot", "snapshot_mount", "mount snapshot (with the cache)"),
    ("snapkeep.repository.session", "SnapshotSession.commit", "repository commit"),
    ("snapkeep.catalog.catalog", "Catalog.put_snapshot", "catalog: snapshot row"),
    ("snapkeep.services.activities.running", "_record_success", "catalog: activity end"),
]

CHILD = r'''
import contextlib, functools, importlib, io, json, sys, time
t0 = time.perf_counter()
from snapkeep.cli import main as cli
import snapkeep.cli.snapshot, snapkeep.cli.local_client  # the command's imports
t1 = time.perf_counter()
acc = {"imports": t1 - t0}
def wrap(module, qual, label):
    owner = importlib.import_module(module)
    *outer, name = qual.split(".")
    for part in outer:
        owner = getattr(owner, part)
    f = getattr(owner, name)
    @functools.wraps(f)
    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            acc[label] = acc.get(label, 0.0) + time.perf_counter() - t
    setattr(owner, name, timed)
    for m in list(sys.modules.values()):  # imported by name elsewhere
        if getattr(m, "__name__", "").startswith("snapkeep") and getattr(m, name, None) is f:
            setattr(m, name, timed)
for step in json.loads(sys.argv[1]):
    wrap(*step)
sys.argv = ["snapkeep", "snapshot:create", "--live", "-e", "main"]
with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
    cli.main()
acc["command after the imports"] = time.perf_counter() - t1
print(json.dumps(acc))
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    runs = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(STEPS)], env=env,
                             capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out.splitlines()[-1]))
    print(f"load average {os.getloadavg()[0]:.2f}; {args.runs} runs; ms, median (min–max)")
    for label in ["imports", *(s[2] for s in STEPS), "command after the imports"]:
        v = [r.get(label, 0.0) * 1000 for r in runs]
        print(f"| {label} | {statistics.median(v):.0f} ({min(v):.0f}–{max(v):.0f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
