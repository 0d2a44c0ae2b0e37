"""The follower inside serve/worker (``binlogs.keep_following``): restarted after errors
with a doubling pause, quiet while another follower runs, ended by ``stop``."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from snapkeep.errors import ConfigError
from snapkeep.services import binlogs


class Recorded(threading.Event):
    """A stop event whose waits return at once; set after ``n`` of them."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.waits = n, []

    def wait(self, timeout=None) -> bool:
        self.waits.append(timeout)
        if len(self.waits) >= self.n:
            self.set()
        return self.is_set()


def test_a_failing_follower_is_restarted_with_a_doubling_pause_and_its_errors_logged():
    lines: list[str] = []
    stop = Recorded(8)

    def load():
        raise ConfigError("snapkeep.toml: broken")

    binlogs.keep_following(load, "production", stop, lines.append)
    assert stop.waits == [1, 2, 4, 8, 16, 32, 60, 60]
    assert lines[0] == ("binlog production: stopped: snapkeep.toml: broken; starting again "
                        "in 1 s")
    assert len(lines) == 8


def test_another_follower_running_is_said_once_and_looked_at_again(monkeypatch):
    lines: list[str] = []
    stop = Recorded(3)
    env = SimpleNamespace(name="production")
    ctx = SimpleNamespace(config=SimpleNamespace(environment=lambda name: env))

    def busy(*_a, **_k):
        raise binlogs.FollowerRunning("a binlog follower of production already runs")

    monkeypatch.setattr(binlogs, "follow", busy)
    binlogs.keep_following(lambda: ctx, "production", stop, lines.append)
    assert stop.waits == [binlogs.BUSY_RETRY] * 3
    assert lines == ["binlog production: not archiving here: a binlog follower of production "
                     "already runs; looking again every 30 s"]


def test_a_stopped_follower_ends_the_thread(monkeypatch):
    stop = threading.Event()
    calls = []
    ctx = SimpleNamespace(config=SimpleNamespace(environment=lambda name: name))

    def follow(_ctx, _env, _out, *, stop):
        calls.append(1)
        stop.set()  # as SIGTERM does: follow commits what came in and returns

    monkeypatch.setattr(binlogs, "follow", follow)
    binlogs.keep_following(lambda: ctx, "production", stop, print)
    assert calls == [1]
