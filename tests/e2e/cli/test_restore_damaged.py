"""``snapshot:restore`` through the CLI from the states people restore from: the database
dropped, a mount deleted, another replaced by a regular file. Everything comes back as
the snapshot (the database with its charset, collation and comment)."""

from __future__ import annotations

import shutil

from tests.helpers.dbstate import q
from tests.helpers.shop import MOUNTS, shop_state, take_snapshot


def test_restore_after_drop_database_and_damaged_mounts(shop, mariadb):
    cli, root, db = shop
    conn = mariadb.connect(db)
    with conn.cursor() as cur:
        cur.execute(f"ALTER DATABASE {q(db)} CHARACTER SET utf8mb4 "
                    f"COLLATE utf8mb4_unicode_520_ci COMMENT 'the shop'")
        cur.execute(f"SHOW CREATE DATABASE {q(db)}")
        created = cur.fetchone()[1]
    sid = take_snapshot(cli)
    at_snapshot = shop_state(mariadb, db, root)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {q(db)}")
    shutil.rmtree(root / "pub" / "media")
    shutil.rmtree(root / "var")
    (root / "var").write_text("a file where the mount was\n")
    cli.run("snapshot:restore", sid, "--yes")
    assert shop_state(mariadb, db, root) == at_snapshot
    assert {m: (root / m).is_dir() for m in MOUNTS} == dict.fromkeys(MOUNTS, True)
    with conn.cursor() as cur:
        cur.execute(f"SHOW CREATE DATABASE {q(db)}")
        assert cur.fetchone()[1] == created
    conn.close()
