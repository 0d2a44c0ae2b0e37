"""Crash points for tests: ``crash_point("name")`` kills this process with SIGKILL when
``SNAPKEEP_CRASH_AT`` names that point. It does nothing otherwise.

An explicit, documented seam: the tests that prove a killed restore never leaves old and
new data mixed need the kill to land at an exact instant, which timing cannot give.
With ``SNAPKEEP_CRASH_HOST=1`` the kill takes this process's children first (its pause
guard above all), as when the whole host goes down: nothing on it settles anything, and
only a worker of another host can. With ``SNAPKEEP_CRASH_SIGNAL=STOP`` the process is
stopped instead (SIGSTOP: a stalled worker, a paused VM), to be woken by SIGCONT.

``seam("name")`` calls the callback a test put in ``SEAMS`` under that name (none
otherwise): for a statement that must run at an exact instant of this process, such as a
DDL between a live snapshot's DDL read and mariadb-backup's point.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

SEAMS: dict[str, Callable[[], None]] = {}  # tests only


def crash_point(name: str) -> None:
    if os.environ.get("SNAPKEEP_CRASH_AT") == name:
        if os.environ.get("SNAPKEEP_CRASH_SIGNAL") == "STOP":
            os.kill(os.getpid(), signal.SIGSTOP)
            return
        if os.environ.get("SNAPKEEP_CRASH_HOST") == "1":
            kill_descendants(os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)


def seam(name: str) -> None:
    callback = SEAMS.get(name)
    if callback is not None:
        callback()


def kill_descendants(pid: int) -> None:
    """SIGKILL every descendant of ``pid`` (children first found, then theirs)."""
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            try:
                os.kill(child, signal.SIGSTOP)  # it cannot react while its own are found
            except ProcessLookupError:
                continue
            kill_descendants(child)
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
