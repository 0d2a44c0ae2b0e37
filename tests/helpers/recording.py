"""Test doubles of our own protocols (never of what we integrate with)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Recorder:
    """A thread-safe ``Reporter`` that keeps what it was told."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.total = 0
        self.done = 0
        self.on_advance: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def log(self, message: str) -> None:
        with self._lock:
            self.lines.append(message)

    def add_total(self, units: int) -> None:
        with self._lock:
            self.total += units

    def advance(self, units: int) -> None:
        with self._lock:
            self.done += units
        if self.on_advance is not None:
            self.on_advance()
