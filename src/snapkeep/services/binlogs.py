"""Point in time: archiving an environment's binary log (``binlog:follow``, and threads
inside ``serve``/``worker``: ``follow_in_background``) and checking that its server allows
it (``binlog:check``); docs/pitr.md."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable

from snapkeep.config import EnvironmentConfig
from snapkeep.engines import mysql
from snapkeep.errors import BusyError, SnapkeepError, UsageError
from snapkeep.progress import Reporter
from snapkeep.repository import BinlogArchive, FollowerLease
from snapkeep.services.activities.locks import EnvironmentLock, lock_path
from snapkeep.services.context import Context
from snapkeep.services.engines import database_target


class FollowerRunning(BusyError):
    """Another follower of the environment holds its lock on this host."""


# Inside serve/worker: a follower that fails is started again after RESTART_FIRST seconds,
# doubling up to RESTART_MAX while it keeps failing soon after starting; one that finds
# another follower running (``binlog:follow`` under systemd, another server) looks again
# every BUSY_RETRY seconds, saying so once.
RESTART_FIRST = 1.0
RESTART_MAX = 60.0
BUSY_RETRY = 30.0


class _LogReporter:
    """The follower's lines for a server's log, prefixed with the environment."""

    def __init__(self, name: str, report: Callable[[str], None]) -> None:
        self.name, self.report = name, report

    def log(self, message: str) -> None:
        self.report(f"binlog {self.name}: {message}")

    def add_total(self, units: int) -> None:
        pass

    def advance(self, units: int) -> None:
        pass


def followed(ctx: Context, names: list[str] | None = None) -> list[EnvironmentConfig]:
    """The environments a server follows: those with ``point_in_time = true`` (of
    ``names``, when given)."""
    return [env for env in ctx.config.environments.values()
            if env.point_in_time and (names is None or env.name in names)]


def follow_in_background(load: Callable[[], Context], names: list[str],
                         stop: threading.Event, report: Callable[[str], None]
                         ) -> list[threading.Thread]:
    """One thread per environment in ``names`` archiving its binlog until ``stop`` is set
    (each with a Context of its own from ``load``): restarted after errors with backoff,
    quietly waiting while another follower of it runs on this host."""
    threads = []
    for name in names:
        t = threading.Thread(target=keep_following, args=(load, name, stop, report),
                             name=f"binlog-{name}", daemon=True)
        t.start()
        threads.append(t)
    return threads


def keep_following(load: Callable[[], Context], name: str, stop: threading.Event,
                   report: Callable[[str], None]) -> None:
    """``follow`` the environment until ``stop`` is set, whatever it fails with."""
    out = _LogReporter(name, report)
    delay = RESTART_FIRST
    busy_said = False
    while not stop.is_set():
        started = time.monotonic()
        try:
            ctx = load()
            follow(ctx, ctx.config.environment(name), out, stop=stop)
        except FollowerRunning as e:
            if not busy_said:
                out.log(f"not archiving here: {e}; looking again every {BUSY_RETRY:.0f} s")
                busy_said = True
            stop.wait(BUSY_RETRY)
            continue
        except Exception as e:  # noqa: BLE001 - a server's follower must outlive anything
            if time.monotonic() - started > RESTART_MAX:
                delay = RESTART_FIRST  # it ran a while: a new failure, not the same again
            what = str(e) if isinstance(e, SnapkeepError) else f"{type(e).__name__}: {e}"
            out.log(f"stopped: {what}; starting again in {delay:.0f} s")
            stop.wait(delay)
            delay = min(delay * 2, RESTART_MAX)
            continue
        if not stop.is_set():  # follow returns only when stopped; be safe
            stop.wait(RESTART_FIRST)


def _target(env: EnvironmentConfig) -> mysql.MySQLTarget:
    target = database_target(env)
    if target is None:
        raise UsageError(f"environment {env.name} has no database: nothing to archive")
    return target


def check(env: EnvironmentConfig) -> list[str]:
    """Every precondition the environment's server does not meet, one line each."""
    return mysql.binlog_problems(_target(env))


def replica_id(ctx: Context, env: EnvironmentConfig) -> int:
    """The server id the follower connects with: fixed per project and environment (a
    second connection with the same id replaces the first on the server), far from the
    small ids servers are given."""
    return 0x5C000000 + zlib.crc32(f"{ctx.config.id}/{env.name}".encode()) % 0xFFFFFF


def follow(ctx: Context, env: EnvironmentConfig, reporter: Reporter, *,
           stop: threading.Event | None = None) -> None:
    """Archive the environment's binlog into the repository until ``stop`` is set (or
    the process is killed: it resumes exactly where it stopped)."""
    if not env.point_in_time:
        raise UsageError(f"environment {env.name} does not have point_in_time = true in "
                         f"{ctx.config.path}; add it under [environments.{env.name}]")
    target = _target(env)
    path = lock_path(ctx, env.name).with_name(f"binlog-{env.name}.lock")
    lock = EnvironmentLock.try_acquire(path)
    if lock is None:
        raise FollowerRunning(f"a binlog follower of {env.name} already runs on this host "
                              f"(it holds {path})")
    try:
        try:  # and across hosts sharing the repository
            lease = FollowerLease(ctx.repository, env.name, reporter.log).acquire()
        except BusyError as e:
            raise FollowerRunning(str(e)) from None
        try:
            archive = BinlogArchive(ctx.repository, env.name)
            mysql.Follower(target, archive, reporter, server_id=replica_id(ctx, env),
                           interval=env.binlog_interval, stop=stop).run()
        finally:
            lease.release()
    finally:
        lock.release()
