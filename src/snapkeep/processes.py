"""Whether a process on this host is running: the one liveness check every layer uses.

A zombie (exited, not yet reaped by its parent) is not running: it holds no lock, serves
no connection and does no more work, so a lock or lease it left is stale. A process we may
not signal (another user's) is running.
"""

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to someone else
    except (OSError, OverflowError, ValueError):
        return False  # not a pid at all (too large)
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:  # the state is the first field after the parenthesised command name
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False  # no /proc: the signal probe above decides
    return state == "Z"
