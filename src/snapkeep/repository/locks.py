"""Repository locks: ``locks/<id>`` objects, so they work on any backend (S3 included).

A lock object is plaintext JSON (so an operator can see who holds it without the key):
``{"version": 1, "id", "host", "pid", "user", "exclusive", "created", "time"}`` with
``time`` (Unix seconds) rewritten every ``REFRESH_S`` while held. Shared locks coexist;
an exclusive lock excludes every other lock. A lock is stale when its host is this host
and its pid is not running, or when it has not been refreshed for ``STALE_S``; stale
locks are removed (with a log line) by whoever meets them. A worker on another host whose
lease the catalog reaped has its locks removed at once (``release_locks_of``).
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from snapkeep.errors import BusyError, NotFoundError, RepositoryError
from snapkeep.processes import pid_alive
from snapkeep.storage import Backend

log = logging.getLogger("snapkeep.repository")

REFRESH_S = 60.0
STALE_S = 30 * 60.0


def is_stale(info: dict[str, Any], now: float | None = None) -> bool:
    now = time.time() if now is None else now
    if info.get("host") == socket.gethostname() and not pid_alive(int(info.get("pid", 0))):
        return True
    return now - float(info.get("time", 0)) > STALE_S


def describe_lock(info: dict[str, Any]) -> str:
    kind = "an exclusive" if info.get("exclusive") else "a shared"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info.get("created", 0))))
    return (f"{kind} lock held by pid {info.get('pid')} on {info.get('host')} "
            f"(user {info.get('user')}, since {when})")


def read_locks(backend: Backend) -> dict[str, dict[str, Any] | None]:
    """Lock id → lock info (None when unreadable)."""
    out: dict[str, dict[str, Any] | None] = {}
    for key in backend.list("locks/"):
        lid = key.rsplit("/", 1)[-1]
        try:
            info = json.loads(backend.get(key))
            out[lid] = info if isinstance(info, dict) else None
        except NotFoundError:
            continue  # released meanwhile
        except ValueError:
            out[lid] = None
    return out


def release_locks_of(backend: Backend, host: str, pid: int,
                     logger: Callable[[str], None] | None = None) -> list[str]:
    """Delete the locks a process ``pid`` on ``host`` holds (the catalog says it is gone:
    its worker's lease was reaped), instead of waiting ``STALE_S`` for them to go stale;
    the IDs deleted."""
    say = logger or log.warning
    gone = []
    for lid, info in read_locks(backend).items():
        if info is not None and info.get("host") == host and info.get("pid") == pid:
            say(f"removing repository lock locks/{lid} of a reaped worker: "
                f"{describe_lock(info)}")
            backend.delete(f"locks/{lid}")
            gone.append(lid)
    return gone


class RepoLock:
    def __init__(self, backend: Backend, exclusive: bool, *, wait: float = 0.0,
                 refresh_interval: float = REFRESH_S,
                 logger: Callable[[str], None] | None = None) -> None:
        self.backend = backend
        self.exclusive = exclusive
        self.wait = wait
        self.refresh_interval = refresh_interval
        self.id = secrets.token_hex(16)
        self.key = f"locks/{self.id}"
        self._log = logger or log.warning
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        now = time.time()
        self.info = {"version": 1, "id": self.id, "host": socket.gethostname(),
                     "pid": os.getpid(), "user": _user(), "exclusive": exclusive,
                     "created": now, "time": now}

    def _write(self) -> None:
        self.info["time"] = time.time()
        self.backend.put(self.key, json.dumps(self.info, sort_keys=True).encode())

    def acquire(self) -> RepoLock:
        deadline = time.monotonic() + self.wait
        delay = 0.05
        while True:
            self._write()
            conflicts = self._conflicts()
            if not conflicts:
                break
            self.backend.delete(self.key)
            if time.monotonic() >= deadline:
                what = "an exclusive" if self.exclusive else "a shared"
                raise BusyError(
                    f"cannot take {what} lock on the repository at {self.backend.describe()}: "
                    f"{describe_lock(conflicts[0])}; try again when it has finished")
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())) * random.uniform(1, 1.5))
            delay = min(delay * 2, 2.0)
        self._thread = threading.Thread(target=self._refresh_loop, daemon=True,
                                        name=f"snapkeep-lock-{self.id[:8]}")
        self._thread.start()
        return self

    def _conflicts(self) -> list[dict[str, Any]]:
        out = []
        for lid, info in read_locks(self.backend).items():
            if lid == self.id:
                continue
            if info is None:
                # An unreadable lock blocks as if exclusive: we cannot tell who holds it.
                out.append({"pid": "?", "host": "?", "user": "?", "exclusive": True,
                            "created": 0})
                continue
            if is_stale(info):
                self._log(f"removing stale repository lock locks/{lid}: {describe_lock(info)}")
                self.backend.delete(f"locks/{lid}")
                continue
            if self.exclusive or info.get("exclusive"):
                out.append(info)
        return out

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_interval):
            try:
                self._write()
            except RepositoryError as e:  # keep trying; a lock left unrefreshed goes stale
                self._log(f"cannot refresh repository lock {self.key}: {e}")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.backend.delete(self.key)

    def __enter__(self) -> RepoLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
