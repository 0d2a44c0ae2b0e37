from __future__ import annotations

from pathlib import Path

import pytest

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
