from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.remote import Team
from tests.helpers.server import drop_mysql_database, served_project
from tests.helpers.shop import Cli, cli_env, create_database, make_shop


@pytest.fixture
def shop(tmp_path: Path, mariadb, fresh_db):
    """A shop on branch develop-branch with data, `snapkeep init` already run in it."""
    root = make_shop(tmp_path / "shop", mariadb, fresh_db)
    cli = Cli(root, cli_env())
    cli.run("init", "--project-id", "shop", "--database", mariadb.url(fresh_db))
    return cli, root, fresh_db


@pytest.fixture
def tiny_disk(tmp_path):
    """A 3 MiB tmpfs for full-disk tests (mounting needs root: skipped otherwise);
    unmounted at the end."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {res.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def new_db(mariadb) -> Iterator[Callable]:
    """Makes empty databases on the private server; drops them afterwards."""
    made: list[str] = []

    def make(name: str) -> str:
        create_database(mariadb, name)
        made.append(name)
        return name

    yield make
    for name in made:
        drop_mysql_database(mariadb, name)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, mariadb) -> Iterator[Team]:
    """A served project for the remote CLI, one per module (test_export_import and
    test_import_upload define their own ``team``, a server with a snapshot to move)."""
    with served_project(tmp_path_factory.mktemp("remote"), mariadb, "develop-branch") \
            as (p, server):
        yield Team(p.root, p.db, server, p.tokens, p.home)
