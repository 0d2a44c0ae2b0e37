"""One activity per environment at a time, enforced by an exclusive ``flock``.

The kernel drops the lock when its holder dies (even by SIGKILL), so a lock that can
be taken means any activity still marked as running was interrupted. A detached worker
inherits the open lock file, and with it the lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from snapkeep.config import safe_name
from snapkeep.services.context import Context

LOCK_WAIT = 30.0  # seconds a runner waits for this host's environment lock


class EnvironmentLock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def try_acquire(cls, path: Path) -> EnvironmentLock | None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return cls(path, fd)

    @classmethod
    def adopt(cls, path: Path, fd: int) -> EnvironmentLock:
        """Take over a lock passed down from a parent process."""
        return cls(path, fd)

    def release(self) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1

    def close_without_unlock(self) -> None:
        """Drop this process's copy; a child that inherited the fd keeps the lock."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def is_locked(path: Path) -> bool:
    lock = EnvironmentLock.try_acquire(path)
    if lock is None:
        return True
    lock.release()
    return False


def lock_path(ctx: Context, environment: str) -> Path:
    """This host's lock file for ``environment``."""
    return ctx.state_path("locks", f"{safe_name(environment)}.lock")


def take_lock(ctx: Context, environment: str, *, wait: float) -> EnvironmentLock | None:
    """This host's lock on ``environment``, waiting up to ``wait`` seconds for it."""
    deadline = time.monotonic() + wait
    while True:
        lock = EnvironmentLock.try_acquire(lock_path(ctx, environment))
        if lock is not None or time.monotonic() >= deadline:
            return lock
        time.sleep(0.05)
