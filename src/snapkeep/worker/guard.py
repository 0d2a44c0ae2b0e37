"""Pause guard: ``python -m snapkeep.worker.guard CONFIG ENV PID``.

Waits for process PID to end. If it ended without resuming the environment (it was
killed), lifts the pause and marks its activity as failed, straight away.
"""

from __future__ import annotations

import os
import select
import sys
import time

from snapkeep.services.activities.locks import EnvironmentLock, lock_path
from snapkeep.services.activities.recovery import recover_interrupted
from snapkeep.services.context import Context


def wait_for_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([fd], [], [])
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    config_path, env_name, pid = argv[0], argv[1], int(argv[2])
    wait_for_exit(pid)
    ctx = Context.load(config_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lock = EnvironmentLock.try_acquire(lock_path(ctx, env_name))
        if lock is not None:
            try:
                recover_interrupted(ctx, env_name)
            finally:
                lock.release()
            return 0
        time.sleep(0.2)  # a worker it started may still hold the lock for a moment
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
