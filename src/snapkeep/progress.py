"""The one small protocol through which progress flows up from engines to front ends.

Engines announce expected work with ``add_total`` (bytes, estimated) and report work
done with ``advance``; the service turns the sum into the activity's completion
percent. Estimates may be wrong: consumers clamp to 100 %.
"""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    """Receives progress from long operations. Implementations must be thread-safe."""

    def log(self, message: str) -> None:
        """A line for the activity log. Callers never pass credentials."""

    def add_total(self, units: int) -> None:
        """More work is expected (bytes)."""

    def advance(self, units: int) -> None:
        """This much work (bytes) is done."""


class NullReporter:
    def log(self, message: str) -> None:
        pass

    def add_total(self, units: int) -> None:
        pass

    def advance(self, units: int) -> None:
        pass
