"""A restore in place of an unchanged media mount, in process: wall and CPU of each step.

    PYTHONPATH=TREE/src .venv/bin/python bench/restore_phases.py [--workdir DIR] [--gib 1]
        [--runs 3]

The first call generates ``bench/media.py``'s tree (same seed) in ``DIR/media``, snapshots
it into ``DIR/repo`` and keeps the description; later calls (e.g. with another ``TREE``,
alternated for an A/B) reuse both. Each run reads the repository and the tree first (warm
page cache), then times ``prepare_restore`` (staging: every file written, or linked and
proven), ``swap`` (the cut-over's re-check and ``os.sync()``) and ``finish`` (the previous
tree deleted); CPU is the process's user + system time. The mount is unchanged from the
snapshot, so with linking every file is linked. Figures in docs/performance.md ("Restore
in place"). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

from snapkeep.engines.volumes import prepare_restore, snapshot_mount
from snapkeep.progress import NullReporter
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend

sys.path.insert(0, str(Path(__file__).resolve().parent))
from media import generate  # noqa: E402  (bench/media.py's tree)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def warm(paths: list[Path]) -> None:
    for root in paths:
        subprocess.run(f"find '{root}' -type f -exec cat {{}} + > /dev/null", shell=True,
                       check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/snapkeep-restore-phases")
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(args.workdir)
    mount, desc_file = work / "media", work / "desc.json"
    if not desc_file.exists():
        rng = random.Random(7)
        generate(mount / "catalog", args.gib / 2, rng, 2500)
        generate(mount / "more", args.gib / 2, rng, 2500)
        repo = Repository.init(LocalBackend(work / "repo"))
        desc_file.write_text(json.dumps(snapshot_mount(mount, repo, NullReporter())))
        repo.flush()
    desc = json.loads(desc_file.read_text())
    repo = Repository.open(LocalBackend(work / "repo"))
    import snapkeep
    print(f"snapkeep from {Path(snapkeep.__file__).parent}")
    for _ in range(args.runs):
        warm([work / "repo" / "data", mount])
        marks = [(time.monotonic(), cpu())]
        p = prepare_restore(mount, desc, repo, NullReporter())
        marks.append((time.monotonic(), cpu()))
        p.swap()
        marks.append((time.monotonic(), cpu()))
        p.finish()
        marks.append((time.monotonic(), cpu()))
        steps = ("prepare", "swap", "finish")
        cells = [f"{name} {b[0] - a[0]:.2f} s (cpu {b[1] - a[1]:.2f})"
                 for name, a, b in zip(steps, marks, marks[1:], strict=False)]
        total = f"total {marks[-1][0] - marks[0][0]:.2f} s (cpu {marks[-1][1] - marks[0][1]:.2f})"
        print("; ".join([*cells, total, f"load {os.getloadavg()[0]:.1f}"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
