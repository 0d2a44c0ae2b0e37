"""The dump workers' shared reporter and their read-ahead of row blocks."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from snapkeep.engines.mysql.workers import SafeReporter, _read_ahead
from snapkeep.progress import NullReporter

GUARD = 30  # seconds: only a deadlock guard, never reached when the code is right


class SlowInner(NullReporter):
    """A reporter whose first ``advance`` waits until released (a catalog commit)."""

    def __init__(self) -> None:
        self.units: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def advance(self, units: int) -> None:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(GUARD)
        self.units.append(units)


def test_progress_does_not_make_a_worker_wait_for_the_reporter_and_nothing_is_lost():
    inner = SlowInner()
    safe = SafeReporter(inner)
    first = threading.Thread(target=safe.advance, args=(5,))
    first.start()
    assert inner.entered.wait(GUARD)
    returned = threading.Event()

    def second() -> None:
        safe.advance(7)
        safe.advance(11)
        returned.set()

    t = threading.Thread(target=second)
    t.start()
    # the second worker's calls return while the reporter is still busy with the first
    assert returned.wait(GUARD)
    assert inner.units == []
    inner.release.set()
    first.join(GUARD)
    t.join(GUARD)
    safe.flush()
    assert sum(inner.units) == 23
    assert inner.units[0] == 5


def blocks(n: int, closed: list[str], fail_at: int | None = None
           ) -> Iterator[tuple[bytes | None, int]]:
    try:
        for i in range(n):
            if i == fail_at:
                raise RuntimeError("the server went away")
            yield bytes([i]) * 3, i
    finally:
        closed.append(threading.current_thread().name)


def test_read_ahead_yields_every_block_in_order_and_closes_the_stream_on_its_thread():
    closed: list[str] = []
    assert list(_read_ahead(blocks(50, closed))) == [(bytes([i]) * 3, i) for i in range(50)]
    assert closed and closed[0] != threading.current_thread().name


def test_read_ahead_raises_the_readers_error_after_the_blocks_before_it():
    closed: list[str] = []
    got = []
    with pytest.raises(RuntimeError, match="went away"):
        for item in _read_ahead(blocks(10, closed, fail_at=4)):
            got.append(item[1])
    assert got == [0, 1, 2, 3]
    assert len(closed) == 1


def test_stopping_early_closes_the_stream_before_returning():
    closed: list[str] = []
    it = _read_ahead(blocks(1000, closed), depth=2)
    assert next(it)[1] == 0
    it.close()  # the worker stopped: the reading thread closes the stream and ends
    assert len(closed) == 1
