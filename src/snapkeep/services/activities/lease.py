"""Who runs an activity, and the lease it keeps renewing while it does.

A running activity belongs to a worker (``host:pid:n``) whose lease it renews every
third of the lease. It is interrupted when its process on this host is gone, or (on any
host) when its lease has expired (``recovery.reap_expired``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from snapkeep.services.context import Context

LEASE_SECONDS = 60.0  # a runner renews every third of it; a silent one is reaped after it

log = logging.getLogger("snapkeep.activities")


def worker_id(n: int | str = 0) -> str:
    """``host:pid:n``: who runs an activity (``n`` tells a process's worker threads apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{n}"


def worker_host_pid(worker: str) -> tuple[str, int | None]:
    host, _, rest = worker.rpartition(":")  # host may itself hold colons; pid and n do not
    host, _, pid = host.rpartition(":")
    return host, int(pid) if pid.isdigit() else None


class Heartbeat:
    """Renews a running activity's lease every third of it, in a thread of its own."""

    def __init__(self, ctx: Context, activity_id: str, worker: str, lease_seconds: float,
                 on_lost: Callable[[str], None]) -> None:
        self._catalog = ctx.catalog
        self._args = (activity_id, worker, lease_seconds)
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{activity_id}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        activity_id, worker, lease = self._args
        while not self._stop.wait(lease / 3):
            try:
                renewed = self._catalog.renew_lease(activity_id, worker, lease)
            except Exception as e:  # noqa: BLE001 - retried at the next beat
                log.warning("could not renew the lease of activity %s: %s", activity_id, e)
                continue
            if not renewed:
                self._on_lost(f"worker {worker} lost its lease on the activity (it was "
                              "declared interrupted)")
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
