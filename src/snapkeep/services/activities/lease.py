"""Who runs an activity, and the lease it keeps renewing while it does.

A running activity belongs to a worker (``WID:pid:n``: the persistent ID of the state
directory it runs from, ``machine_id``, its process and thread) whose lease it renews
every third of the lease. It is interrupted when its process is gone (judged only by a
process of the same worker ID), or (on any host) when its lease has expired
(``recovery.reap_expired``). Its side effects are fenced: each first makes sure the
lease is still its own (``Fence``).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

from snapkeep.errors import Interrupted
from snapkeep.services.context import Context

LEASE_SECONDS = 60.0  # a runner renews every third of it; a silent one is reaped after it

log = logging.getLogger("snapkeep.activities")


_ids: dict[str, str] = {}
_ids_lock = threading.Lock()


def machine_id(ctx: Context) -> str:
    """This worker's persistent ID, ``hostname/random``: generated once and kept in the
    state directory (``.snapkeep/worker-id``), so it survives restarts and differs between
    containers that share a hostname (each has its own state directory). A pid is only
    meaningful to a process with the same ID."""
    path = ctx.state_path("worker-id")
    with _ids_lock:
        known = _ids.get(str(path))
        if known:
            return known
        try:
            wid = path.read_text().strip()
        except FileNotFoundError:
            wid = ""
        if not wid:
            wid = f"{socket.gethostname()}/{secrets.token_hex(5)}"
            tmp = path.with_name(f"worker-id.{os.getpid()}.tmp")
            tmp.write_text(wid + "\n")
            try:
                os.link(tmp, path)  # fails if another process made it first: use theirs
            except FileExistsError:
                wid = path.read_text().strip()
            finally:
                tmp.unlink(missing_ok=True)
        _ids[str(path)] = wid
        return wid


def worker_id(ctx: Context, n: int | str = 0) -> str:
    """``WID:pid:n``: who runs an activity (``n`` tells a process's worker threads apart)."""
    return f"{machine_id(ctx)}:{os.getpid()}:{n}"


def parse_worker(worker: str) -> tuple[str, int | None]:
    """(the worker's persistent ID, its pid) of a ``worker`` field. Rows written before
    persistent IDs (``host:pid:n``) give the hostname as the ID."""
    wid, _, rest = worker.rpartition(":")  # the ID may hold colons; pid and n do not
    wid, _, pid = wid.rpartition(":")
    return wid, int(pid) if pid.isdigit() else None


def worker_host(wid: str) -> str:
    """The hostname part of a persistent worker ID."""
    return wid.partition("/")[0]


def runs_here(ctx: Context, worker: str | None) -> bool:
    """Whether ``worker`` is a process of this state directory (so its pid can be
    checked here)."""
    return worker is not None and "/" in worker and parse_worker(worker)[0] == machine_id(ctx)


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
