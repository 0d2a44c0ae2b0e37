"""The MySQL engine's failures name the target and never leak the password."""

from __future__ import annotations

import socket

import pytest

from snapkeep.engines.mysql import (
    MySQLTarget,
    check_connection,
    dump_database,
    estimate_size,
    prepare_restore,
)
from snapkeep.errors import PermissionDenied, ServiceUnavailable, SnapkeepError
from snapkeep.progress import NullReporter
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend

PASSWORD = "Correct-Horse-7"
WRONG = "Wr0ng-Battery-Staple"


@pytest.fixture(scope="module")
def app_user(mariadb):
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'sk_app'@'%%' IDENTIFIED BY %s", (PASSWORD,))
        cur.execute("CREATE USER IF NOT EXISTS 'sk_nogrant'@'%%' IDENTIFIED BY %s", (PASSWORD,))
    yield "sk_app"
    with conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS 'sk_app'@'%'")
        cur.execute("DROP USER IF EXISTS 'sk_nogrant'@'%'")
    conn.close()


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_connection_returns_the_server_version(mariadb, fresh_db):
    target = MySQLTarget(mariadb.host, mariadb.port, "root", None, fresh_db)
    assert "MariaDB" in check_connection(target)
    assert estimate_size(target) == 0


def test_an_unreachable_server_names_host_and_port():
    target = MySQLTarget("127.0.0.1", unused_port(), "root", PASSWORD, "shop")
    with pytest.raises(ServiceUnavailable) as info:
        check_connection(target)
    message = str(info.value)
    assert f"127.0.0.1:{target.port}" in message and "\n" not in message
    assert PASSWORD not in message


def test_a_wrong_password_says_so_without_echoing_it(mariadb, fresh_db, app_user):
    target = MySQLTarget(mariadb.host, mariadb.port, app_user, WRONG, fresh_db)
    with pytest.raises(ServiceUnavailable) as info:
        check_connection(target)
    message = str(info.value)
    assert "password" in message and app_user in message
    assert WRONG not in message and PASSWORD not in message
    assert WRONG not in repr(target)


def test_an_unknown_database_is_named(mariadb):
    target = MySQLTarget(mariadb.host, mariadb.port, "root", None, "no_such_db")
    with pytest.raises(ServiceUnavailable) as info:
        check_connection(target)
    assert "no_such_db" in str(info.value) and "does not exist" in str(info.value)


def test_a_user_without_access_to_the_database_is_told_which(mariadb, fresh_db, app_user):
    target = MySQLTarget(mariadb.host, mariadb.port, "sk_nogrant", PASSWORD, fresh_db)
    with pytest.raises(PermissionDenied) as info:
        check_connection(target)
    assert "sk_nogrant" in str(info.value) and PASSWORD not in str(info.value)


def test_dump_and_restore_errors_are_snapkeep_errors(mariadb, tmp_path):
    target = MySQLTarget("127.0.0.1", unused_port(), "root", PASSWORD, "shop")
    repo = Repository.init(LocalBackend(tmp_path))
    with pytest.raises(ServiceUnavailable):
        dump_database(target, repo, NullReporter())
    with pytest.raises(SnapkeepError) as info:
        prepare_restore(target, {"kind": "mysql", "format": 1}, repo, NullReporter())
    assert PASSWORD not in str(info.value)


def test_a_description_of_an_unknown_format_is_refused(mariadb, fresh_db, tmp_path):
    target = MySQLTarget(mariadb.host, mariadb.port, "root", None, fresh_db)
    repo = Repository.init(LocalBackend(tmp_path))
    with pytest.raises(SnapkeepError, match="format"):
        prepare_restore(target, {"kind": "mysql", "format": 99}, repo, NullReporter())
