"""Point in time: archiving an environment's binary log (``binlog:follow``) and checking
that its server allows it (``binlog:check``); docs/pitr.md."""

from __future__ import annotations

import threading
import zlib

from snapkeep.config import EnvironmentConfig
from snapkeep.engines import mysql
from snapkeep.errors import BusyError, UsageError
from snapkeep.progress import Reporter
from snapkeep.repository import BinlogArchive
from snapkeep.services.activities.locks import EnvironmentLock, lock_path
from snapkeep.services.context import Context
from snapkeep.services.engines import database_target


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
        raise BusyError(f"a binlog follower of {env.name} already runs on this host "
                        f"(it holds {path})")
    try:
        archive = BinlogArchive(ctx.repository, env.name)
        mysql.Follower(target, archive, reporter, server_id=replica_id(ctx, env),
                       interval=env.binlog_interval, stop=stop).run()
    finally:
        lock.release()
