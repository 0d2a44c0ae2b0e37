"""One-shot worker for ``--no-wait``: ``python -m snapkeep.worker --config PATH --activity ID``.

Claims exactly that queued activity (waiting while its environment is busy), runs it
with a lease like any worker, and exits. If another worker (a server's) ran it or
someone cancelled it first, it exits without doing anything.
"""

from __future__ import annotations

import argparse
import signal
import sys

from snapkeep.errors import SnapkeepError
from snapkeep.malloc import bound_heap_growth
from snapkeep.services.activities.lease import LEASE_SECONDS
from snapkeep.services.activities.workers import Worker
from snapkeep.services.context import Context


def main(argv: list[str]) -> int:
    bound_heap_growth()
    parser = argparse.ArgumentParser(prog="python -m snapkeep.worker")
    parser.add_argument("--config", required=True)
    parser.add_argument("--activity", required=True)
    parser.add_argument("--lease", type=float, default=LEASE_SECONDS)
    args = parser.parse_args(argv)
    try:
        ctx = Context.load(args.config)
        worker = Worker(ctx, lease_seconds=args.lease, report=lambda line: print(line))
        signal.signal(signal.SIGTERM, lambda *_: worker.stop.set())
        a = worker.run_activity(args.activity)
    except SnapkeepError as e:
        print(f"activity {args.activity}: {e}", file=sys.stderr)
        return e.exit_code
    if a is None:
        print(f"activity {args.activity} does not exist, or the worker was stopped",
              file=sys.stderr)
        return 3
    return 0 if a.result != "failure" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
