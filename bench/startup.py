"""Start-up: `--version`, `--help`, `snapshot:list` and an unchanged re-snapshot of the media tree.

    .venv/bin/python bench/startup.py [--gib 1.0] [--runs 5] [--workdir /tmp/snapkeep-startup]
    .venv/bin/python bench/startup.py --trees OLD/src NEW/src [--gib 1.0] [--runs 5]

A mounts-only project on a media tree made as bench/media.py makes it (seed 15), one
snapshot taken; then each command ``--runs`` times (with ``--trees``, the two source trees
alternated, as bench/media.py does), after one warm-up run per tree that writes the .pyc
files (``PYTHONDONTWRITEBYTECODE`` is unset: snapkeep runs as an installed package does).
Per command: wall and CPU seconds (median (min–max)), and the import time, the sum of the
top-level cumulative times of ``python -X importtime`` (median of 3). Not part of the
test suite; the figures are in docs/performance.md, Start-up.
"""

from __future__ import annotations

import os
import random
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

from measure import Row, Samples, media_arguments, print_header, print_table, round_order, timed
from media import generate
from trees import check_trees, tree_env

COMMANDS = {"version": ["--version"], "help": ["--help"],
            "list": ["snapshot:list", "-e", "main"],
            "unchanged": ["snapshot:create", "--live", "-e", "main"]}
ROWS = [Row(f"{label} ({what})", f"{key}_{what}", digits=3)
        for key, label in (("version", "--version"), ("help", "--help"),
                           ("list", "snapshot:list"), ("unchanged", "unchanged re-snapshot"))
        for what in ("wall", "cpu", "imports")]
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| (?! )", re.M)


def environment(tree: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SNAPKEEP_") and k != "PYTHONDONTWRITEBYTECODE"}
    return tree_env(tree, env) if tree else env


def run(app: Path, env: dict[str, str], args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of ``snapkeep args`` in ``app``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed([sys.executable, "-m", "snapkeep", *args], app, env).seconds
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def import_seconds(app: Path, env: dict[str, str], args: list[str]) -> float:
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "snapkeep", *args],
                         cwd=app, env=env, capture_output=True, text=True, check=True)
    return sum(int(m.group(1)) for m in IMPORT_LINE.finditer(res.stderr)) / 1e6


def prepare(work: Path, gib: float, env: dict[str, str]) -> Path:
    """The app with its media tree, snapkeep.toml and one snapshot (made once, kept)."""
    app = work / "app"
    if not (app / "snapkeep.toml").exists():
        shutil.rmtree(app, ignore_errors=True)
        generate(app / "pub" / "media", gib, random.Random(15), 5000)
        sk = [sys.executable, "-m", "snapkeep"]
        timed([*sk, "init", "--project-id", "bench", "-e", "main", "--mount", "pub/media"],
              app, env)
        timed([*sk, "snapshot:create", "--live", "-e", "main"], app, env)
    return app


def main() -> int:
    args = media_arguments(__doc__ or "", runs=5, workdir="/tmp/snapkeep-startup").parse_args()
    print_header({}, [f"runs: {args.runs}; trees alternated per run"], warm_note="")
    check_trees(args.trees or [])
    sides = {"OLD": environment(args.trees[0]), "NEW": environment(args.trees[1])} \
        if args.trees else {"snapkeep": environment(None)}
    app = prepare(Path(args.workdir), args.gib, next(iter(sides.values())))
    samples = Samples()
    for key, cmd in COMMANDS.items():
        for env in sides.values():
            run(app, env, cmd)  # warm-up: writes the .pyc files
        for n in range(1, args.runs + 1):
            for name in round_order(list(sides), n):
                wall, cpu = run(app, sides[name], cmd)
                samples.add(name, f"{key}_wall", wall)
                samples.add(name, f"{key}_cpu", cpu)
        for name, env in sides.items():
            for _ in range(3):
                samples.add(name, f"{key}_imports", import_seconds(app, env, cmd))
        print(f"{key}: " + "; ".join(f"{name} {samples.cell(name, f'{key}_wall', digits=3)} s"
                                     for name in sides), flush=True)
    names = list(reversed(sides)) if args.trees else list(sides)
    print_table(samples, ROWS, names, "seconds, median (min–max); wall and CPU of "
                f"{args.runs} runs, imports (-X importtime total) of 3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
