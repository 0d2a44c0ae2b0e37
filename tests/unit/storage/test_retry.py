"""The retry policy, with an injected sleep and a scripted in-memory backend."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from snapkeep.errors import NotFoundError, RepositoryError
from snapkeep.storage import RetryingBackend, TransientStorageError


class Scripted:
    """An in-memory backend whose calls fail as scripted: ``failures[op]`` is a list of
    exceptions raised by the next calls of ``op`` (then it works)."""

    def __init__(self, **failures: list[Exception]) -> None:
        self.data: dict[str, bytes] = {}
        self.failures = {k: list(v) for k, v in failures.items()}
        self.calls: dict[str, int] = {}

    def _tick(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        pending = self.failures.get(op)
        if pending:
            raise pending.pop(0)

    def describe(self) -> str:
        return "s3://bucket/prefix at http://127.0.0.1:9"

    def put(self, key: str, data: bytes) -> None:
        self._tick("put")
        self.data[key] = data

    def get(self, key: str) -> bytes:
        self._tick("get")
        if key not in self.data:
            raise NotFoundError(f"{key} is not there")
        return self.data[key]

    def exists(self, key: str) -> bool:
        self._tick("exists")
        return key in self.data

    def delete(self, key: str) -> None:
        self._tick("delete")
        self.data.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[str]:
        self.calls["list"] = self.calls.get("list", 0) + 1
        keys = sorted(k for k in self.data if k.startswith(prefix))
        fail_after = self.failures.get("list_after")
        for i, key in enumerate(keys):
            if fail_after and i == fail_after[0]:
                fail_after.pop(0)
                raise TransientStorageError("connection reset", reason="connection reset")
            yield key


def down(n: int) -> list[Exception]:
    return [TransientStorageError(f"cannot reach: refused #{i}", reason="connection refused")
            for i in range(n)]


def make(inner: Scripted, **kw) -> tuple[RetryingBackend, list[float]]:
    sleeps: list[float] = []
    kw.setdefault("random", lambda: 1.0)
    return RetryingBackend(inner, sleep=sleeps.append, **kw), sleeps


def test_transient_failures_are_retried_with_exponential_backoff() -> None:
    inner = Scripted(put=down(4))
    b, sleeps = make(inner, attempts=5, base_delay=0.2, max_delay=5)
    b.put("k", b"v")
    assert inner.data == {"k": b"v"}
    assert inner.calls["put"] == 5
    assert sleeps == pytest.approx([0.2, 0.4, 0.8, 1.6])


def test_delays_are_capped_and_jittered_within_half_to_full_step() -> None:
    inner = Scripted(get=down(7))
    inner.data["k"] = b"v"
    b, sleeps = make(inner, attempts=8, base_delay=1, max_delay=5, random=lambda: 0.0)
    assert b.get("k") == b"v"
    assert sleeps == pytest.approx([0.5, 1, 2, 2.5, 2.5, 2.5, 2.5])
    b2, _ = make(Scripted(), attempts=3, base_delay=1, max_delay=5, random=lambda: 0.5)
    assert b2.delay(1) == pytest.approx(0.75)
    assert b2.delay(10) == pytest.approx(3.75)


def test_gives_up_after_the_last_attempt_with_a_clear_message() -> None:
    inner = Scripted(put=down(10))
    b, sleeps = make(inner, attempts=5)
    with pytest.raises(RepositoryError) as e:
        b.put("k", b"v")
    assert not isinstance(e.value, TransientStorageError)  # outer wrappers do not retry it
    assert isinstance(e.value.__cause__, TransientStorageError)
    assert inner.calls["put"] == 5
    assert len(sleeps) == 4
    assert str(e.value).startswith(
        "storage at s3://bucket/prefix at http://127.0.0.1:9 is unavailable after 5 attempts: "
        "connection refused; check that the storage server is running and reachable")
    assert "run the command again" in str(e.value)


@pytest.mark.parametrize("error", [
    NotFoundError("k is not there"),
    RepositoryError("storage at x denied access: check the secret"),
    RepositoryError("the repository disk at /r is full"),
    ValueError("invalid range"),
])
def test_final_errors_are_not_retried(error: Exception) -> None:
    inner = Scripted(get=[error])
    b, sleeps = make(inner)
    with pytest.raises(type(error)) as e:
        b.get("k")
    assert e.value is error
    assert inner.calls["get"] == 1
    assert sleeps == []


def test_not_found_after_a_transient_failure_is_still_not_found() -> None:
    inner = Scripted(get=down(1))
    b, sleeps = make(inner)
    with pytest.raises(NotFoundError):
        b.get("missing")
    assert len(sleeps) == 1


def test_every_operation_is_retried() -> None:
    inner = Scripted(put=down(1), get=down(1), exists=down(1), delete=down(1))
    b, sleeps = make(inner)
    b.put("k", b"0123456789")
    assert b.get("k") == b"0123456789"
    assert b.exists("k")
    assert b.get_range("k", 2, 3) == b"234"  # inner has no get_range: sliced from get
    b.delete("k")
    b.ensure()  # inner has no ensure: nothing to do
    assert len(sleeps) == 4
    assert b.describe() == inner.describe()


def test_one_attempt_means_no_retry() -> None:
    inner = Scripted(put=down(1))
    b, sleeps = make(inner, attempts=1)
    with pytest.raises(RepositoryError, match="unavailable after 1 attempts"):
        b.put("k", b"v")
    assert sleeps == []
    with pytest.raises(ValueError):
        RetryingBackend(inner, attempts=0)


def test_a_listing_that_fails_part_way_restarts_without_duplicates() -> None:
    inner = Scripted()
    inner.data = {f"k{i:02d}": b"" for i in range(20)}
    inner.failures["list_after"] = [5, 12, 12]
    b, sleeps = make(inner, attempts=3)
    keys = list(b.list())
    assert keys == sorted(inner.data)
    assert len(keys) == len(set(keys))
    assert inner.calls["list"] == 4
    assert len(sleeps) == 3  # progress between failures resets the count


def test_a_listing_that_keeps_failing_gives_up() -> None:
    inner = Scripted()
    inner.data = {f"k{i}": b"" for i in range(5)}
    inner.failures["list_after"] = [2] * 10
    b, sleeps = make(inner, attempts=3)
    got: list[str] = []
    with pytest.raises(RepositoryError, match="unavailable after 3 attempts"):
        for key in b.list():
            got.append(key)
    assert got == ["k0", "k1"]
    assert len(sleeps) == 2


def test_retries_are_logged_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    inner = Scripted(put=down(2))
    b, _ = make(inner)
    with caplog.at_level(logging.WARNING, logger="snapkeep.storage"):
        b.put("data/k", b"v")
    assert len(caplog.records) == 2
    assert "put data/k failed (connection refused); retrying" in caplog.records[0].getMessage()
    assert "attempt 2 of 5" in caplog.records[0].getMessage()
