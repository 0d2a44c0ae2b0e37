"""Recovery state every worker of an environment sees: ``<root>/.snapkeep-state/``.

The pause marker (``paused.json``) and the mounts' cut-over journal (``journal.json``)
live beside the environment's mounts, on the environment's own storage: whoever can
restore or pause the environment reaches them, on any host, so a worker of another host
settles what a dead one left (``services/activities/recovery.py``). The database's own
cut-over journal lives in the database server (``engines/mysql/journal.py``), shared
already. Each file is written whole and durably: a temporary file fsync'ed, renamed over,
the directory fsync'ed.

Files a version before this kept under ``.snapkeep/paused/`` and ``.snapkeep/journal/``
(the worker's own disk) are still read and settled by that host (``legacy``).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from snapkeep.config import SHARED_STATE_DIR, EnvironmentConfig, safe_name
from snapkeep.services.context import Context

DIR = SHARED_STATE_DIR  # ".snapkeep-state"; config/values.py refuses a mount there


def path(env: EnvironmentConfig, name: str) -> Path:
    return env.root / DIR / name


def legacy(ctx: Context, kind: str, environment: str) -> Path:
    """Where the state was kept on the worker's disk (``kind``: paused, journal)."""
    return ctx.state_path(kind, f"{safe_name(environment)}.json")


def read(p: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return {}  # torn by hand; a write of ours is atomic
    return data if isinstance(data, dict) else {}


def write(p: Path, data: dict[str, Any]) -> None:
    """Replace ``p`` with ``data``, durably, before the step it records."""
    p.parent.mkdir(mode=0o700, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
    _fsync_dir(p.parent)


def remove(p: Path) -> None:
    """Remove ``p`` durably, and its directory once empty (nothing left to settle)."""
    try:
        p.unlink()
    except FileNotFoundError:
        return
    _fsync_dir(p.parent)
    if p.parent.name == DIR:
        with contextlib.suppress(OSError):  # not empty: the other file is still needed
            p.parent.rmdir()


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
