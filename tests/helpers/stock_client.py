"""Loading SQL scripts with the stock ``mariadb`` client, as a user of an export would."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from snapkeep.engines.mysql import export_sql
from snapkeep.repository import Repository
from tests.helpers.dbstate import q
from tests.helpers.recording import Recorder
from tests.helpers.sql import run


def client_load(mariadb: Any, db: str, script: Path) -> None:
    """Load ``script`` into ``db`` with the stock client over TCP; fail on any output."""
    client = shutil.which("mariadb") or shutil.which("mysql")
    assert client, "the mariadb client is not installed"
    with script.open("rb") as f:
        res = subprocess.run([client, "--no-defaults", "--host=127.0.0.1",
                              f"--port={mariadb.port}", "--user=root", db],
                             stdin=f, capture_output=True, timeout=1800, check=False)
    assert res.returncode == 0 and not res.stderr, (
        f"the client failed to load {script.name} (exit {res.returncode}):\n"
        f"{res.stderr.decode(errors='replace')[-3000:]}")


def export_and_reload(mariadb: Any, repo: Repository, db: str, description: dict[str, Any],
                      path: Path) -> Recorder:
    """Export ``description`` to ``path``, recreate ``db`` empty and load the file into it."""
    progress = Recorder()
    with path.open("wb") as out:
        export_sql(description, repo, out, progress)
    conn = mariadb.connect()
    try:
        run(conn, f"DROP DATABASE IF EXISTS {q(db)}", f"CREATE DATABASE {q(db)}")
    finally:
        conn.close()
    client_load(mariadb, db, path)
    return progress
