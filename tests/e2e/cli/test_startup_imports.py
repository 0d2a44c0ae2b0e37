"""Each command imports only what it uses (docs/performance.md, Start-up): ``--version`` and
``--help`` no service library at all; a local snapshot neither the server's nor the remote
client's libraries, nor boto3 for a repository on this disk, nor Rich without a terminal.
Deterministic: the modules left in ``sys.modules`` after the command ran in a fresh
interpreter, no timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.shop import cli_env

SERVICE_LIBRARIES = {"sqlalchemy", "fastapi", "starlette", "uvicorn", "httpx", "boto3",
                     "botocore", "zstandard", "argon2", "pymysql", "MySQLdb", "cryptography",
                     "blake3", "pyfastcdc", "croniter", "jinja2", "alembic", "rich",
                     "snapkeep.services", "snapkeep.catalog", "snapkeep.repository"}
SERVER_AND_REMOTE = {"fastapi", "starlette", "uvicorn", "httpx", "boto3", "botocore",
                     "jinja2", "snapkeep.api", "snapkeep.web", "snapkeep.cli.remote_client"}
# what a project without a database or schedules never needs
DATABASE_AND_SCHEDULES = {"pymysql", "MySQLdb", "snapkeep.engines.mysql.connect",
                          "sqlalchemy.dialects.postgresql", "croniter", "dateutil"}

# Runs the command as `snapkeep` does, then prints the modules it loaded as the last line.
PROBE = """
import json, sys
from snapkeep.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def loaded(cwd: Path, *args: str) -> set[str]:
    """The modules (and their packages) a fresh interpreter loaded to run ``snapkeep args``."""
    res = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=cli_env(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    names = json.loads(res.stderr.strip().splitlines()[-1])
    return {".".join(n.split(".")[:i]) for n in names for i in (1, 2, 3)}


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["-h"]])
def test_version_and_help_import_no_service_library(tmp_path, args):
    assert loaded(tmp_path, *args) & SERVICE_LIBRARIES == set()


def test_a_local_snapshot_imports_neither_server_nor_remote_libraries(tmp_path):
    app = tmp_path / "app"
    (app / "files").mkdir(parents=True)
    (app / "files" / "a.txt").write_text("a\n")
    init = loaded(app, "init", "--project-id", "t", "-e", "main", "--mount", "files")
    assert (app / "snapkeep.toml").is_file()
    create = loaded(app, "snapshot:create", "--live", "-e", "main")
    again = loaded(app, "snapshot:create", "--live", "-e", "main")  # unchanged re-snapshot
    listing = loaded(app, "snapshot:list", "-e", "main")
    assert "alembic" in init and "zstandard" in create  # the probe sees the imports
    for command in (init, create, again, listing):  # no terminal either: no Rich bar
        assert command & (SERVER_AND_REMOTE | {"rich"}) == set()
    assert "snapkeep.engines.mysql" in create and "snapkeep.catalog.sql" in create
    # the catalog's schema is current after init: its activities, log lines and snapshots
    # go through the stdlib sqlite3 (docs/performance.md, "Unchanged re-snapshot, third
    # pass"); SQLAlchemy and its ORM classes are left for users, tokens, schedules, webhooks
    for command in (create, again, listing):
        assert command & {"sqlalchemy", "alembic", "snapkeep.catalog.models"} == set()
    for command in (create, again):  # the volumes face loads its tar export on first use
        assert "tarfile" not in command
    for command in (create, again, listing):  # a mounts-only project, no schedule
        assert command & DATABASE_AND_SCHEDULES == set()
