"""Shared fixtures: one private MariaDB server per test session."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator

import pytest

from snapkeep.sandbox import PrivateMariaDB

# clock first: postgres imports it, and a plugin must be loaded before it is imported
pytest_plugins = ["tests.helpers.clock", "tests.helpers.seaweed", "tests.helpers.postgres"]

# A login stored by `snapkeep auth:login` on the developer's machine must not send the
# tests' CLI commands to a real server: every test process gets an empty config dir.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="snapkeep-test-config-")

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMariaDB]:
    """A private MariaDB server (root, no password) shared by the whole session."""
    server = PrivateMariaDB(tmp_path_factory.mktemp("mariadb"))
    try:
        server.start()
    except Exception as e:  # noqa: BLE001 - one clear failure, not a trace per test
        # not a skip: scripts/setup installs the server, and a suite that skipped every
        # database test would pass without testing anything
        pytest.fail(f"cannot start a private MariaDB server: {e}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def fresh_db(mariadb: PrivateMariaDB) -> Iterator[str]:
    """The name of a new, empty database on the session server; dropped afterwards."""
    name = f"t{os.getpid()}_{next(_counter)}"
    conn = mariadb.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
        yield name
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()
