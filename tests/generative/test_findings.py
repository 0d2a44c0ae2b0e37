"""Failures the generative tests found that are not fixed yet, each as a minimal regular
test. While its feature is in ``features.PENDING`` the test is a strict xfail: it starts
failing (XPASS) when the engine is fixed, the sign to delete the feature from ``PENDING``
so the generators cover it again. Fixed findings became regular tests where their code
lives (test_mysql_enum_members, test_mysql_binary_metadata, test_volumes_deep_paths,
test_mysql_table_kinds).
"""

from __future__ import annotations

import pytest

from snapkeep.engines.mysql import dump_database
from tests.helpers.dbstate import restore_database, target_for
from tests.helpers.generative.features import PENDING
from tests.helpers.recording import Recorder


def pending(feature: str):
    return pytest.mark.xfail(feature in PENDING, reason=PENDING.get(feature, ""), strict=True)


@pending("default_backslash")
def test_a_default_expression_with_a_backslash_keeps_it(mariadb, fresh_db, repo):
    conn = mariadb.connect(fresh_db)
    with conn.cursor() as cur:
        # the server itself stores this as _utf8mb4'\N' (one backslash left): the default
        # is the 2 bytes \N from here on, and the snapshot must keep that
        cur.execute("CREATE TABLE d (id INT PRIMARY KEY, "
                    "a TINYTEXT DEFAULT (_utf8mb4 X'5c5c4e'))")
        cur.execute("INSERT INTO d (id) VALUES (1)")
        cur.execute("SELECT HEX(a) FROM d")
        assert cur.fetchall() == (("5C4E",),)
    target = target_for(mariadb, fresh_db)
    description = dump_database(target, repo, Recorder())
    with conn.cursor() as cur:
        cur.execute("DROP TABLE d")
    restore_database(target, description, repo)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO d (id) VALUES (2)")
        cur.execute("SELECT id, HEX(a) FROM d ORDER BY id")
        assert cur.fetchall() == ((1, "5C4E"), (2, "5C4E"))
