from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.remote import Team
from tests.helpers.server import Server, cli_project, drop_mysql_database
from tests.helpers.shop import Cli, cli_env, fill, make_app_root


@pytest.fixture
def shop(tmp_path: Path, mariadb, fresh_db):
    """A shop on branch develop-branch with data, `snapkeep init` already run in it."""
    root = tmp_path / "shop"
    root.mkdir()
    make_app_root(root)
    conn = mariadb.connect(fresh_db)
    fill(conn)
    conn.close()
    cli = Cli(root, cli_env())
    cli.run("init", "--project-id", "shop", "--database", mariadb.url(fresh_db))
    return cli, root, fresh_db


@pytest.fixture
def new_db(mariadb) -> Iterator[Callable]:
    """Makes empty databases on the private server; drops them afterwards."""
    made: list[str] = []

    def make(name: str) -> str:
        conn = mariadb.connect()
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
        conn.close()
        made.append(name)
        return name

    yield make
    for name in made:
        drop_mysql_database(mariadb, name)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, mariadb) -> Iterator[Team]:
    """A served project for the remote CLI, one per module (test_export_import and
    test_import_upload define their own ``team``, a server with a snapshot to move)."""
    base = tmp_path_factory.mktemp("remote")
    p = cli_project(base, mariadb, "develop-branch")
    server = Server(p.root / "snapkeep.toml", base, "--no-scheduler")
    try:
        yield Team(p.root, p.db, server, p.tokens, p.home)
    finally:
        server.terminate()
        drop_mysql_database(mariadb, p.db)
