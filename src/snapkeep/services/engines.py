"""How an environment's config maps onto the engines: database target, mount paths."""

from __future__ import annotations

from pathlib import Path

from snapkeep.config import EnvironmentConfig
from snapkeep.engines.mysql import MySQLTarget
from snapkeep.services.snapshots import pause


def database_target(env: EnvironmentConfig) -> MySQLTarget | None:
    db = env.database
    if db is None:
        return None
    return MySQLTarget(host=db.host, port=db.port, user=db.user, password=db.password,
                       database=db.database, unix_socket=db.unix_socket)


def mount_dir(env: EnvironmentConfig, mount: str) -> Path:
    return env.root / mount


def pause_entries(env: EnvironmentConfig, mount: str) -> frozenset[str]:
    """Paths inside ``mount`` that belong to the pause (never snapshotted, kept on restore)."""
    flag = pause.flag_path(env) or pause.MAGENTO_FLAG
    prefix = mount.rstrip("/") + "/"
    return frozenset({flag[len(prefix):]}) if flag.startswith(prefix) else frozenset()
