"""A restore by a database user without ``SET USER`` (issue #13, item 7).

Views, triggers, routines and events carry a DEFINER; creating one with another user's
DEFINER needs ``SET USER`` (SUPER before MariaDB 10.5). A restore whose cut-over or
rollback would create such an object is refused before anything is built, naming the
GRANT; one whose objects need nothing it lacks goes through, and a cut-over that fails
half-way rolls back with every live view intact (they are renamed aside and back, never
recreated).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from snapkeep.engines.mysql import (
    MySQLTarget,
    check_restore_privileges,
    cleanup_leftovers,
    dump_database,
    prepare_restore,
)
from snapkeep.errors import PermissionDenied
from snapkeep.progress import NullReporter
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend
from tests.helpers.dbstate import assert_same, db_state, no_helpers_left, q
from tests.helpers.sql import run

PASSWORD = "pw-restricted"


RESTORE_AS = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from snapkeep.engines.mysql import MySQLTarget, prepare_restore
    from snapkeep.progress import NullReporter
    from snapkeep.repository import Repository
    from snapkeep.storage import LocalBackend

    repo_dir, desc_file, port, user, password, db = sys.argv[1:]
    target = MySQLTarget("127.0.0.1", int(port), user, password, db)
    repo = Repository.open(LocalBackend(repo_dir))
    p = prepare_restore(target, json.loads(Path(desc_file).read_text()), repo,
                        NullReporter(), threads=2)
    p.swap()
    p.finish()
""")


@pytest.fixture
def accounts(mariadb, fresh_db) -> Iterator[tuple[str, str, Any]]:
    """(restricted user, another user, root connection): the restricted user holds every
    privilege on the database and its restore helpers, but not SET USER."""
    admin = mariadb.connect()
    me, other = f"skr{os.getpid()}", f"sko{os.getpid()}"
    run(admin, *[f"CREATE USER '{me}'@'%' IDENTIFIED BY '{PASSWORD}'",
                f"CREATE USER '{other}'@'%'",
                f"GRANT ALL ON {q(fresh_db)}.* TO '{me}'@'%'",
                f"GRANT ALL ON `{fresh_db}\\_\\_sk%`.* TO '{me}'@'%'",
                f"GRANT RELOAD, PROCESS ON *.* TO '{me}'@'%'"])
    try:
        yield me, other, admin
    finally:
        run(admin, *[f"DROP USER IF EXISTS '{me}'@'%'", f"DROP USER IF EXISTS '{other}'@'%'",
                    f"DROP ROLE IF EXISTS r{me}"])
        admin.close()


def shop_schema(me: str, view_definer: str) -> list[str]:
    """A small shop whose objects are the restricted user's but one view's DEFINER."""
    mine = f"DEFINER='{me}'@'%'"
    return [
        "CREATE TABLE customer (id INT PRIMARY KEY, email VARCHAR(80)) ENGINE=InnoDB",
        "CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(80))",
        f"CREATE {mine} VIEW mine_view AS SELECT id FROM customer",
        f"CREATE DEFINER='{view_definer}'@'%' SQL SECURITY INVOKER VIEW report AS "
        "SELECT COUNT(*) AS n FROM customer",
        f"CREATE {mine} TRIGGER customer_ai AFTER INSERT ON customer FOR EACH ROW "
        " INSERT INTO audit (note) VALUES (NEW.email)",
        f"CREATE {mine} PROCEDURE count_customers(OUT n INT) SELECT COUNT(*) INTO n FROM customer",
        "INSERT INTO customer SELECT seq, CONCAT('c', seq, '@example.invalid') FROM seq_1_to_50",
    ]


def _restricted(mariadb, me: str, db: str) -> MySQLTarget:
    return MySQLTarget(mariadb.host, mariadb.port, me, PASSWORD, db)


def _snapshot(mariadb, db: str, tmp_path) -> tuple[dict[str, Any], Repository]:
    repo = Repository.init(LocalBackend(tmp_path / "repo"))
    root = MySQLTarget(mariadb.host, mariadb.port, mariadb.user, None, db)
    description = dump_database(root, repo, NullReporter())
    repo.flush()
    return description, repo


def _restore(target: MySQLTarget, description: dict[str, Any], repo: Repository) -> None:
    """``description`` restored into ``target`` to the end: shadow, cut-over, finish."""
    restore = prepare_restore(target, description, repo, NullReporter(), threads=2)
    restore.swap()
    restore.finish()


def test_a_restore_needing_set_user_is_refused_before_anything_changes(
        mariadb, fresh_db, accounts, tmp_path):
    me, other, admin = accounts
    admin.select_db(fresh_db)
    run(admin, *shop_schema(me, other))
    description, repo = _snapshot(mariadb, fresh_db, tmp_path)
    # Since the snapshot, the view was replaced (the restore would create it again) and a
    # DBA added a trigger of the other user (a rollback would create it again). Before
    # the check, the cut-over failed on the view, then the rollback on the trigger: the
    # trigger was lost, and the journal left wedged every later activity.
    run(admin, *["DROP VIEW report", f"CREATE DEFINER='{me}'@'%' VIEW report AS SELECT 1 AS n",
                f"CREATE DEFINER='{other}'@'%' TRIGGER customer_bu BEFORE UPDATE ON customer "
                "FOR EACH ROW SET NEW.email = LOWER(NEW.email)"])
    before = db_state(admin, fresh_db)
    target = _restricted(mariadb, me, fresh_db)

    with pytest.raises(PermissionDenied) as refused:
        check_restore_privileges(target, description)
    message = str(refused.value)
    assert f"GRANT SET USER ON *.* TO '{me}'@'%'" in message
    assert "`report`" in message and f"`{other}`@`%`" in message

    with pytest.raises(PermissionDenied) as refused_again:
        prepare_restore(target, description, repo, NullReporter(), threads=2)
    assert str(refused_again.value) == message
    assert_same(db_state(admin, fresh_db), before, "after the refused restore")
    no_helpers_left(admin, fresh_db)
    # the environment is not wedged: the next backup (and restore check) runs as before
    assert dump_database(target, repo, NullReporter())["database"] == fresh_db

    # the rollback's needs count too: with a snapshot whose objects are all the user's,
    # the live trigger of the other user still needs SET USER
    mine = json.loads(json.dumps(description).replace(f"`{other}`@`%`", f"`{me}`@`%`"))
    with pytest.raises(PermissionDenied) as for_rollback:
        check_restore_privileges(target, mine)
    assert "live trigger `customer_bu`" in str(for_rollback.value)


def test_missing_database_privileges_are_named_as_grants(mariadb, fresh_db, accounts, tmp_path):
    me, other, admin = accounts
    admin.select_db(fresh_db)
    run(admin, *shop_schema(me, me))
    description, _repo = _snapshot(mariadb, fresh_db, tmp_path)
    run(admin, *[f"REVOKE TRIGGER, CREATE VIEW ON {q(fresh_db)}.* FROM '{me}'@'%'"])
    with pytest.raises(PermissionDenied) as refused:
        check_restore_privileges(_restricted(mariadb, me, fresh_db), description)
    message = str(refused.value)
    assert f"GRANT TRIGGER ON {q(fresh_db)}.* TO '{me}'@'%'" in message
    assert f"GRANT CREATE VIEW ON {q(fresh_db)}.* TO '{me}'@'%'" in message
    assert "SET USER" not in message


def test_with_set_user_through_a_role_the_restore_goes_through(
        mariadb, fresh_db, accounts, tmp_path):
    me, other, admin = accounts
    admin.select_db(fresh_db)
    run(admin, *shop_schema(me, other))
    expected = db_state(admin, fresh_db)
    description, repo = _snapshot(mariadb, fresh_db, tmp_path)
    run(admin, *["DROP VIEW report", "DELETE FROM customer WHERE id > 10"])
    # SET USER through a default role (information_schema does not show a role's grants)
    role = f"r{me}"
    run(admin, *[f"CREATE ROLE {role}", f"GRANT SET USER ON *.* TO {role}",
                f"GRANT {role} TO '{me}'@'%'", f"SET DEFAULT ROLE {role} FOR '{me}'@'%'"])
    target = _restricted(mariadb, me, fresh_db)
    check_restore_privileges(target, description)
    _restore(target, description, repo)
    assert_same(db_state(admin, fresh_db), expected, "restored by the user with SET USER")
    no_helpers_left(admin, fresh_db)


@pytest.mark.parametrize("point", ["mysql.after-rename", "mysql.objects-half"])
def test_a_failed_cut_over_rolls_back_with_every_live_view_intact(
        mariadb, fresh_db, accounts, tmp_path, point):
    """The precheck passes (every object it creates is the user's own); the live views
    of another user are renamed aside and back, so a rollback needs no SET USER."""
    me, other, admin = accounts
    admin.select_db(fresh_db)
    run(admin, *shop_schema(me, me))
    description, _repo = _snapshot(mariadb, fresh_db, tmp_path)
    run(admin, *["DROP VIEW report",
                f"CREATE DEFINER='{other}'@'%' VIEW report AS SELECT 2 AS n",
                f"CREATE DEFINER='{other}'@'%' VIEW added_later AS SELECT id FROM customer",
                "DELETE FROM customer WHERE id > 20"])
    before = db_state(admin, fresh_db)
    target = _restricted(mariadb, me, fresh_db)
    check_restore_privileges(target, description)

    desc_file = tmp_path / "desc.json"
    desc_file.write_text(json.dumps(description))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), SNAPKEEP_CRASH_AT=point)
    res = subprocess.run([sys.executable, "-c", RESTORE_AS, str(tmp_path / "repo"),
                          str(desc_file), str(mariadb.port), me, PASSWORD, fresh_db],
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == -signal.SIGKILL, f"not killed at {point}:\n{res.stderr[-4000:]}"
    cleanup_leftovers(target, NullReporter(), keep_new=False)  # the restore failed: undo
    after = db_state(admin, fresh_db)
    assert_same(after, before, f"rolled back after a failure at {point}")
    assert after["tables"]["report"]["view"][1].startswith(
        f"CREATE ALGORITHM=UNDEFINED DEFINER=`{other}`@`%`")
    no_helpers_left(admin, fresh_db)


def test_unchanged_objects_of_another_definer_stay_in_place(
        mariadb, fresh_db, accounts, tmp_path):
    """The usual case: the view of another user (and a procedure and an event of its)
    is the same in the snapshot and the live database. The cut-over leaves them where
    they are, so neither it nor a rollback needs SET USER, and the restore goes through."""
    me, other, admin = accounts
    admin.select_db(fresh_db)
    run(admin, *shop_schema(me, other) + [
        f"CREATE DEFINER='{other}'@'%' PROCEDURE theirs() SELECT 1",
        f"CREATE DEFINER='{other}'@'%' EVENT nightly ON SCHEDULE EVERY 1 DAY "
        "STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM audit"])
    run(admin, *[f"GRANT SELECT ON mysql.proc TO '{me}'@'%'"])  # to back theirs() up
    expected = db_state(admin, fresh_db)
    description, repo = _snapshot(mariadb, fresh_db, tmp_path)
    run(admin, *["DELETE FROM customer WHERE id > 5", "DROP VIEW mine_view",
                "DROP PROCEDURE count_customers"])
    damaged = db_state(admin, fresh_db)
    target = _restricted(mariadb, me, fresh_db)
    check_restore_privileges(target, description)
    restore = prepare_restore(target, description, repo, NullReporter(), threads=2)
    restore.swap()
    restore.rollback()
    assert_same(db_state(admin, fresh_db), damaged, "rolled back")
    _restore(target, description, repo)
    assert_same(db_state(admin, fresh_db), expected, "restored by the user without SET USER")
    no_helpers_left(admin, fresh_db)


def test_a_restricted_user_restores_a_dropped_database(mariadb, fresh_db, accounts, tmp_path):
    """The check holds for a database that is gone (nothing live to move aside): the
    restricted user's database-level grants outlive DROP DATABASE, so it restores."""
    me, _other, admin = accounts
    admin.select_db(fresh_db)
    run(admin, *shop_schema(me, me))
    description, repo = _snapshot(mariadb, fresh_db, tmp_path)
    before = db_state(admin, fresh_db)
    run(admin, f"DROP DATABASE {q(fresh_db)}")
    target = _restricted(mariadb, me, fresh_db)
    check_restore_privileges(target, description)
    _restore(target, description, repo)
    assert_same(db_state(admin, fresh_db), before, "restored after DROP DATABASE")
    no_helpers_left(admin, fresh_db)
