"""A console project whose develop-branch environment has point_in_time on, its database
on a private binlog server, and a follower archiving it in a thread of the test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from snapkeep.progress import NullReporter
from snapkeep.sandbox import PrivateMariaDB
from snapkeep.services import binlogs, pitr_window
from snapkeep.services.context import Context
from tests.helpers.console import ENV, ConsoleProject, make_project


def pitr_project(base: Path, server: PrivateMariaDB, db: str = "shop") -> ConsoleProject:
    """``make_project`` with develop-branch's database on ``server`` and point_in_time."""
    project = make_project(base, database=server.url(db))
    text = project.config.read_text()
    line = f'database = "{server.url(db)}"\n'
    assert line in text
    project.config.write_text(text.replace(
        line, line + "point_in_time = true\nbinlog_interval = 0.3\n", 1))
    return project


@contextmanager
def following(ctx: Context, env: str = ENV) -> Iterator[None]:
    """``binlog:follow`` of ``env`` in a thread until the block ends."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def go() -> None:
        try:
            binlogs.follow(ctx.with_own_repository(), ctx.config.environments[env],
                           NullReporter(), stop=stop)
        except BaseException as e:  # noqa: BLE001 - surfaced by the caller
            errors.append(e)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(60)
        assert not errors, errors


def caught_up(ctx: Context, env: str = ENV, *, with_base: bool = True,
              timeout: float = 60) -> pitr_window.Window:
    """The window once every event the server wrote is archived (lag 0) and, with
    ``with_base``, it has a base (``timeout`` a bound, not a speed requirement)."""
    deadline = time.monotonic() + timeout
    while True:
        w = pitr_window.window(ctx, ctx.config.environments[env])
        if w.lag_seconds == 0.0 and (w.available or not with_base):
            return w
        assert time.monotonic() < deadline, f"never caught up: {w.describe()}"
        time.sleep(0.1)
