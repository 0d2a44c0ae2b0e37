"""A hostile SQL dump cannot reach other databases (issue #13, item 1).

The environment's database user here is root of the server that also holds another
environment's database: the worst case. Each dump tries one way out of the scratch
database — naming the other database, switching to it with the client's commands, making
users, reading or writing files — and must fail or be contained: the other database is
unchanged, its rows are in no snapshot, no user or file appears, and the import leaves
no private server, work directory or scratch database behind, whether it succeeded or
failed."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from snapkeep.engines.mysql.names import import_name
from tests.helpers.shop import Cli, one_line_error
from tests.helpers.transfer import leftovers, state, unzstd

SECRET = "customer-secret-4711"


def hostile(other: str, scratch: str, outside: Path) -> dict[str, str]:
    """Technique -> the SQL of a dump trying it (after an ordinary table of its own)."""
    return {
        "update": f"UPDATE `{other}`.customer SET name = 'pwned';",
        "create-as-select": f"CREATE TABLE stolen AS SELECT * FROM `{other}`.customer;",
        "insert-select": "CREATE TABLE stolen (id int, name text);\n"
                         f"INSERT INTO stolen SELECT * FROM `{other}`.customer;",
        "backslash-u": f"\\u {other}\nUPDATE customer SET name = 'pwned';\n"
                       f"CREATE TABLE `{scratch}`.stolen AS SELECT * FROM customer;",
        "connect": f"connect {other}\nUPDATE customer SET name = 'pwned';",
        "delimiter-use": f"DELIMITER ;;\nUSE `{other}`;;\nUPDATE customer SET name = 'pwned';;"
                         "\nDELIMITER ;",
        "definer-trigger": "CREATE DEFINER=`root`@`localhost` TRIGGER tr AFTER INSERT ON t "
                           f"FOR EACH ROW UPDATE `{other}`.customer SET name = 'pwned';\n"
                           "INSERT INTO t VALUES (2);",
        "grant": "GRANT ALL PRIVILEGES ON *.* TO 'sk_evil'@'%' IDENTIFIED BY 'x' WITH GRANT "
                 "OPTION;\nCREATE USER 'sk_evil2'@'%' IDENTIFIED BY 'x';",
        "into-outfile": f"SELECT * FROM `{other}`.customer INTO OUTFILE "
                        f"'{outside / 'leak.txt'}';",
        "outfile-scratch": f"SELECT 'x' INTO OUTFILE '{outside / 'dropped.txt'}';",
        "load-file": "CREATE TABLE leaked AS SELECT LOAD_FILE("
                     f"'{outside / 'secret.txt'}') AS v;",
        "general-log": f"SET GLOBAL general_log_file = '{outside / 'general.log'}';\n"
                       "SET GLOBAL general_log = 1;\nSELECT 'written by the dump';",
        "definer-procedure": "DELIMITER ;;\nCREATE DEFINER=`root`@`localhost` PROCEDURE p() "
                             f"BEGIN SET GLOBAL general_log_file = '{outside / 'p.log'}'; "
                             "SET GLOBAL general_log = 1; END;;\nDELIMITER ;\nCALL p();",
        "definer-view-of-users": "CREATE DEFINER=`mariadb.sys`@`localhost` SQL SECURITY "
                                 "DEFINER VIEW accounts AS SELECT User FROM mysql.global_priv;"
                                 "\nCREATE TABLE who AS SELECT * FROM accounts;",
    }


TECHNIQUES = list(hostile("o", "s", Path("/x")))


def env_users(mariadb) -> set[str]:
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT User FROM mysql.user")
        users = {r[0] for r in cur.fetchall()}
    conn.close()
    return users


@pytest.fixture
def other(mariadb, new_db: Callable[[str], str], shop) -> str:  # noqa: F811 - a fixture
    """Another environment's database, with customers, on the environment's server."""
    name = new_db(f"{shop[2]}_other")
    conn = mariadb.connect(name)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE customer (id int PRIMARY KEY, name text)")
        cur.execute("INSERT INTO customer VALUES (1, %s), (2, %s)", (SECRET, SECRET + "-2"))
    conn.close()
    return name


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_a_hostile_dump_reaches_no_other_database(shop, mariadb, other, tmp_path,
                                                  technique) -> None:
    cli, root, db = shop
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o777)
    outside.chmod(0o777)  # writable by a server running as another OS user, too
    (outside / "secret.txt").write_text(SECRET)
    src = tmp_path / "dump"
    src.mkdir()
    sql = hostile(other, import_name(db), outside)[technique]
    (src / "dump.sql").write_text(f"CREATE TABLE t (a int);\nINSERT INTO t VALUES (1);\n{sql}\n")
    before, users = state(mariadb, other), env_users(mariadb)
    live = state(mariadb, db)

    res = cli.run("snapshot:import", str(src), check=False)

    assert state(mariadb, other) == before, res.stderr
    assert state(mariadb, db) == live
    assert env_users(mariadb) == users
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert leftovers(mariadb, root) == (set(), [])  # no private server, scratch or work dir
    if res.returncode != 0:
        one_line_error(res, "dump.sql line ")
        return
    # the server's accounts, read through a view of a definer that would exist there
    assert technique != "definer-view-of-users", res.stderr
    sid = res.stdout.strip().splitlines()[-1].removeprefix("Snapshot name:").strip()
    out = tmp_path / "export"
    cli.run("snapshot:export", sid, str(out))
    assert SECRET.encode() not in unzstd(out / "database.sql.zst")


def test_a_dump_with_definers_imports_exactly_as_root_on_the_private_server(
        shop, mariadb, tmp_path) -> None:
    """What a restricted temporary user could not load: DEFINER=root views and triggers
    (every mariadb-dump of them has one) come back with their definer."""
    cli, _root, db = shop
    src = tmp_path / "dump"
    src.mkdir()
    (src / "dump.sql").write_text(
        "CREATE TABLE t (a int);\nCREATE DEFINER=`root`@`localhost` SQL SECURITY DEFINER "
        "VIEW v AS SELECT a FROM t;\nCREATE DEFINER=`someone`@`%` TRIGGER tr BEFORE INSERT ON "
        "t FOR EACH ROW SET NEW.a = NEW.a + 1;\n")
    sid = cli.run("snapshot:import", str(src)).stdout.strip().splitlines()[-1].split()[-1]
    out = tmp_path / "export"
    cli.run("snapshot:export", sid, str(out))
    sql = unzstd(out / "database.sql.zst")
    assert b"DEFINER=`root`@`localhost`" in sql and b"DEFINER=`someone`@`%`" in sql


def test_without_the_mariadb_server_programs_an_import_of_a_dump_is_refused(
        shop, tmp_path) -> None:
    """Nothing falls back to loading on the environment's server."""
    cli, _root, _db = shop
    bin_dir = tmp_path / "bin"  # the client only: no mariadb-install-db
    bin_dir.mkdir()
    client = shutil.which("mariadb") or shutil.which("mysql")
    assert client
    (bin_dir / "mariadb").symlink_to(client)
    src = tmp_path / "dump"
    src.mkdir()
    (src / "dump.sql").write_text("CREATE TABLE t (a int);\n")
    no_server = Cli(cli.cwd, {**cli.env, "PATH": str(bin_dir)})
    res = no_server.run("snapshot:import", str(src), check=False)
    one_line_error(res, "mariadb-install-db not found", "private throwaway server",
                   "apt-get install mariadb-server")
    assert "No snapshots yet" in cli.run("snapshot:list").stderr
    assert json.loads(cli.run("activity:list", "--format", "json").stdout) == []
