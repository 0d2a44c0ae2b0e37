"""Retry transient storage failures with exponential backoff and jitter.

Only ``TransientStorageError`` is retried (connection refused or reset, timeouts, 5xx,
throttling). ``NotFoundError`` and every other ``RepositoryError`` (denied access, a
missing bucket, a full disk, an invalid key) go straight through. When the last attempt
fails, a plain ``RepositoryError`` says the storage is unavailable and what to do; it is
not transient, so a wrapper around a wrapper does not multiply the attempts.

The delay before attempt ``n + 1`` is drawn from ``[d / 2, d]`` with
``d = min(max_delay, base_delay * 2 ** (n - 1))`` ("equal jitter": writers that failed
together do not come back together, yet every wait is at least half the step).
``sleep`` and ``random`` are injectable so tests neither wait nor depend on chance.
"""

from __future__ import annotations

import logging
import random as _random
import time
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass
from typing import TypeVar

from snapkeep.errors import RepositoryError
from snapkeep.storage.base import Backend, TransientStorageError
from snapkeep.storage.base import ensure as _ensure
from snapkeep.storage.base import get_range as _get_range
from snapkeep.storage.base import get_range_into as _get_range_into

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(eq=False)
class RetryingBackend:
    """``inner`` with each call tried up to ``attempts`` times (see the module docstring)."""

    inner: Backend
    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 5.0
    _: KW_ONLY
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = _random.random

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    def describe(self) -> str:
        return self.inner.describe()

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure."""
        step = min(self.max_delay, self.base_delay * 2 ** (failures - 1))
        return step / 2 + self.random() * step / 2

    def _unavailable(self, e: TransientStorageError) -> RepositoryError:
        return RepositoryError(
            f"storage at {self.describe()} is unavailable after {self.attempts} attempts: "
            f"{e.reason}; check that the storage server is running and reachable from this "
            "machine (endpoint, network, firewall), then run the command again")

    def _failed(self, failures: int, what: str, e: TransientStorageError) -> None:
        """After the ``failures``-th failure in a row: give up if that was the last attempt,
        else log and wait before the next."""
        if failures >= self.attempts:
            raise self._unavailable(e) from e
        delay = self.delay(failures)
        log.warning("storage at %s: %s failed (%s); retrying in %.2f s (attempt %d of %d)",
                    self.describe(), what, e.reason, delay, failures + 1, self.attempts)
        self.sleep(delay)

    def _call(self, what: str, fn: Callable[..., T], *args: object) -> T:
        failures = 0
        while True:
            try:
                return fn(*args)
            except TransientStorageError as e:
                failures += 1
                self._failed(failures, what, e)

    # -- the protocol ------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        self._call(f"put {key}", self.inner.put, key, data)

    def get(self, key: str) -> bytes:
        return self._call(f"get {key}", self.inner.get, key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self._call(f"get {key}", _get_range, self.inner, key, offset, length)

    def get_range_into(self, key: str, offset: int, buf: memoryview) -> int:
        return self._call(f"get {key}", _get_range_into, self.inner, key, offset, buf)

    def exists(self, key: str) -> bool:
        return self._call(f"check {key}", self.inner.exists, key)

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", self.inner.delete, key)

    def ensure(self) -> None:
        self._call("ensure", _ensure, self.inner)

    def list(self, prefix: str = "") -> Iterator[str]:
        """A listing that fails part-way is started again; keys already yielded are not
        yielded twice. The failure count resets whenever the listing makes progress."""
        seen: set[str] = set()
        failures = 0
        while True:
            try:
                for key in self.inner.list(prefix):
                    if key not in seen:
                        seen.add(key)
                        failures = 0
                        yield key
                return
            except TransientStorageError as e:
                failures += 1
                self._failed(failures, f"list {prefix or '/'}", e)
