"""Crash points for tests: ``crash_point("name")`` kills this process with SIGKILL when
``SNAPKEEP_CRASH_AT`` names that point. It does nothing otherwise.

An explicit, documented seam: the tests that prove a killed restore never leaves old and
new data mixed need the kill to land at an exact instant, which timing cannot give.
"""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    if os.environ.get("SNAPKEEP_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
