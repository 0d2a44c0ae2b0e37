"""Who runs an activity, and the lease it keeps renewing while it does.

A running activity belongs to a worker (``host:pid:n``) whose lease it renews every
third of the lease. It is interrupted when its process on this host is gone, or (on any
host) when its lease has expired (``recovery.reap_expired``). Its side effects are fenced:
each first makes sure the lease is still its own (``Fence``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from snapkeep.errors import Interrupted
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


class Fence:
    """Asked before each side effect others would see (pausing, resuming, a snapshot's
    commit, a restore's cut-over): does this worker still hold its activity's lease?

    A renewal less than half a lease ago (by this host's monotonic clock, which keeps
    running while a process is stopped) answers yes without a round trip: the lease has
    more than half of it left, so no reaper can have taken it. Otherwise the lease is
    renewed here and now; when that fails — the activity was reaped, so another worker
    may already act on its environment — ``check`` raises ``Interrupted`` and the caller
    does nothing further. ``fence.lost`` then says why.
    """

    def __init__(self, ctx: Context, activity_id: str, worker: str,
                 lease_seconds: float) -> None:
        self._catalog = ctx.catalog
        self._args = (activity_id, worker, lease_seconds)
        self._lock = threading.Lock()
        self._renewed_at = time.monotonic()  # claimed (or renewed) just now
        self.lost: str | None = None

    def renewed(self, at: float) -> None:
        with self._lock:
            self._renewed_at = max(self._renewed_at, at)

    def check(self, what: str) -> None:
        activity_id, worker, lease = self._args
        with self._lock:
            if self.lost is None and time.monotonic() - self._renewed_at < lease / 2:
                return
            if self.lost is None:
                asked = time.monotonic()
                if self._catalog.renew_lease(activity_id, worker, lease):
                    self._renewed_at = asked
                    return
                self.lost = (f"worker {worker} lost its lease on activity {activity_id} (it "
                             "was declared interrupted, and another worker may act on its "
                             "environment)")
            lost = self.lost
        raise Interrupted(f"{lost}; it stops before {what} and does nothing further")


class Heartbeat:
    """Renews a running activity's lease every third of it, in a thread of its own."""

    def __init__(self, ctx: Context, activity_id: str, worker: str, lease_seconds: float,
                 on_lost: Callable[[str], None], fence: Fence | None = None) -> None:
        self._catalog = ctx.catalog
        self._args = (activity_id, worker, lease_seconds)
        self._on_lost = on_lost
        self._fence = fence
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{activity_id}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        activity_id, worker, lease = self._args
        while not self._stop.wait(lease / 3):
            asked = time.monotonic()
            try:
                renewed = self._catalog.renew_lease(activity_id, worker, lease)
            except Exception as e:  # noqa: BLE001 - retried at the next beat
                log.warning("could not renew the lease of activity %s: %s", activity_id, e)
                continue
            if renewed and self._fence is not None:
                self._fence.renewed(asked)
            if not renewed:
                self._on_lost(f"worker {worker} lost its lease on the activity (it was "
                              "declared interrupted)")
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
