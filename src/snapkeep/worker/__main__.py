"""Detached activity runner: ``python -m snapkeep.worker CONFIG ACTIVITY_ID LOCK_FD``.

Started by ``--no-wait``; inherits the environment lock (an open, flocked fd) from the
command that claimed the activity, runs it, and exits.
"""

from __future__ import annotations

import sys

from snapkeep.errors import SnapkeepError
from snapkeep.services import activities, operations
from snapkeep.services.context import Context
from snapkeep.services.locks import EnvironmentLock


def main(argv: list[str]) -> int:
    config_path, activity_id, fd = argv[0], argv[1], int(argv[2])
    ctx = Context.load(config_path)
    activity = ctx.catalog.get_activity(activity_id)
    if activity is None:
        print(f"activity {activity_id} does not exist", file=sys.stderr)
        return 3
    lock = EnvironmentLock.adopt(activities.lock_path(ctx, activity.environment), fd)
    try:
        operations.execute(ctx, activities.Claim(activity, lock))
    except SnapkeepError as e:
        print(f"activity {activity_id} failed: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
