"""Partial restores (--only, --mount, --table) and restores into another environment
(--target), through the CLI against a real MariaDB server and real files.

Each partial restore must change exactly what it names: the fingerprints of everything
else are those of the state just before the restore.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pymysql
import pytest

from tests.helpers.shop import (
    MOUNTS,
    create_database,
    make_shop,
    one_line_error,
    shop_state,
    take_snapshot,
    tree,
)


def _mutate(mariadb, db: str, root: Path) -> None:
    """Change every part: each table, each mount."""
    conn = mariadb.connect(db)
    with conn.cursor() as cur:
        cur.execute("UPDATE store SET name = CONCAT(name, ' (changed)')")
        cur.execute("UPDATE catalog_product_entity SET price = price + 1 WHERE entity_id < 50")
        cur.execute("INSERT INTO sales_order (store_id, customer_name, grand_total) "
                    "VALUES (1, 'after the snapshot', 1.5)")
        cur.execute("DELETE FROM order_log WHERE id % 3 = 0")
    conn.commit()
    conn.close()
    (root / "app" / "etc" / "env.php").write_text("<?php return ['db' => 'changed'];\n")
    (root / "pub" / "media" / "catalog" / "product" / "img3.jpg").unlink()
    (root / "pub" / "media" / "new.jpg").write_bytes(b"new image")
    (root / "var" / "log" / "system.log").write_text("changed\n")


def _table_part(state: dict, table: str) -> dict:
    db = state["db"]
    return {k: v for k, v in db.items() if k in (table, f"{table}:ddl")}


@pytest.fixture
def restored_shop(shop, mariadb):
    """The shop with one snapshot, its state then, and a way back to it."""
    cli, root, db = shop
    sid = take_snapshot(cli)
    at_snapshot = shop_state(mariadb, db, root)

    def reset() -> None:
        cli.run("snapshot:restore", sid, "--yes")
        assert shop_state(mariadb, db, root) == at_snapshot

    return cli, root, db, sid, at_snapshot, reset


@pytest.mark.parametrize("options, restored", [
    (["--only", "database"], {"db"}),
    (["--only", "mounts"], set(MOUNTS)),
    (["--mount", "pub/media"], {"pub/media"}),
    (["--mount", "/var/", "--mount", "app/etc"], {"var", "app/etc"}),
    (["--only", "mounts", "--mount", "var"], {"var"}),
])
def test_partial_restore_changes_exactly_what_it_names(restored_shop, mariadb, options,
                                                       restored):
    cli, root, db, sid, at_snapshot, reset = restored_shop
    _mutate(mariadb, db, root)
    before = shop_state(mariadb, db, root)
    assert all(before[k] != at_snapshot[k] for k in before)  # every part did change
    out = cli.run("snapshot:restore", sid, "--yes", *options)
    assert "Everything else in develop-branch stays as it is." in out.stderr
    after = shop_state(mariadb, db, root)
    for part in after:
        expected = at_snapshot if part in restored else before
        assert after[part] == expected[part], part
    reset()


def test_table_restore_keeps_the_other_tables_and_foreign_keys(restored_shop, mariadb):
    cli, root, db, sid, at_snapshot, reset = restored_shop
    _mutate(mariadb, db, root)
    before = shop_state(mariadb, db, root)
    # sales_order: its trigger comes with it, its foreign key still points at the live
    # store table; store: sales_order's foreign key into it is kept, pointing here.
    cli.run("snapshot:restore", sid, "--yes", "--table", "sales_order", "--table", "store")
    after = shop_state(mariadb, db, root)
    for table in ("sales_order", "store"):
        assert _table_part(after, table) == _table_part(at_snapshot, table)
    for table in ("catalog_product_entity", "order_log"):
        assert _table_part(after, table) == _table_part(before, table)
    assert after["db"]["triggers"] == at_snapshot["db"]["triggers"]
    assert all(after[m] == before[m] for m in MOUNTS)
    conn = mariadb.connect(db)
    with conn.cursor() as cur:
        cur.execute("SELECT UNIQUE_CONSTRAINT_SCHEMA, TABLE_NAME, REFERENCED_TABLE_NAME FROM "
                    "information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s",
                    (db,))
        assert cur.fetchall() == ((db, "sales_order", "store"),)
        cur.execute("SHOW DATABASES")
        assert [n for (n,) in cur.fetchall() if n.startswith(db + "__")] == []
        # the trigger fires into the live order_log, the view still reads the live table
        cur.execute("SELECT COUNT(*) FROM order_log")
        logged = cur.fetchone()[0]
        cur.execute("INSERT INTO sales_order (store_id, grand_total) VALUES (1, 500)")
        cur.execute("SELECT COUNT(*) FROM order_log")
        assert cur.fetchone()[0] == logged + 1
        cur.execute("SELECT COUNT(*) FROM big_orders WHERE grand_total = 500")
        assert cur.fetchone()[0] == 1
    conn.rollback()
    conn.close()
    reset()


def test_restoring_only_the_parent_table_keeps_the_child_linked(restored_shop, mariadb):
    cli, root, db, sid, at_snapshot, reset = restored_shop
    _mutate(mariadb, db, root)
    before = shop_state(mariadb, db, root)
    cli.run("snapshot:restore", sid, "--yes", "--table", "store")
    after = shop_state(mariadb, db, root)
    assert _table_part(after, "store") == _table_part(at_snapshot, "store")
    # sales_order's DDL names its parent in this database, not in the restore's old one
    assert after["db"]["sales_order:ddl"] == before["db"]["sales_order:ddl"]
    assert {k: v for k, v in after["db"].items() if not k.startswith("store")} == \
        {k: v for k, v in before["db"].items() if not k.startswith("store")}
    conn = mariadb.connect(db)
    with conn.cursor() as cur, pytest.raises(pymysql.err.IntegrityError,
                                             match="foreign key constraint fails"):
        cur.execute("INSERT INTO sales_order (store_id) VALUES (99)")
    conn.close()
    reset()


@pytest.mark.parametrize("options, message", [
    (["--table", "no_such_table"], "has no table no_such_table"),
    (["--mount", "media"], "has no mount media"),
    (["--only", "database", "--mount", "var"], "--only database restores no mounts"),
    (["--only", "mounts", "--table", "store"], "--only mounts restores no tables"),
    (["--target", "nowhere"], "unknown environment 'nowhere'"),
])
def test_bad_partial_restore_options_are_refused_before_anything_changes(
        restored_shop, mariadb, options, message):
    cli, root, db, sid, at_snapshot, _reset = restored_shop
    res = cli.run("snapshot:restore", sid, "--yes", *options, check=False)
    assert res.returncode != 0
    one_line_error(res, message)
    assert shop_state(mariadb, db, root) == at_snapshot
    listed = cli.run("activity:list", "-e", "develop-branch").stdout
    assert "restored" not in listed


# -- restore into another environment --------------------------------------------------------

@pytest.fixture
def two_environments(shop, mariadb, tmp_path):
    """The shop's develop-branch plus a `production` environment with other data."""
    cli, root, dev_db = shop
    prod_db = f"{dev_db}_prod"
    create_database(mariadb, prod_db)
    prod_root = make_shop(tmp_path / "production", mariadb, prod_db, products=900, orders=700)
    (prod_root / "pub" / "media" / "only-in-production.jpg").write_bytes(b"prod" * 1000)
    cfg = root / "snapkeep.toml"
    cfg.write_text(cfg.read_text()
                   + "post_restore = ['printf \"%s %s\" \"$SNAPKEEP_SOURCE_ENVIRONMENT\" "
                     "\"$SNAPKEEP_SNAPSHOT_ID\" > post-restore.txt', "
                     "'echo anonymised customer e-mails']\n"
                   + f'\n[environments.production]\ntype = "production"\nroot = "{prod_root}"\n'
                   f'mounts = {list(MOUNTS)!r}\n'.replace("'", '"')
                   + f'database = "{mariadb.url(prod_db)}"\n')
    yield cli, root, dev_db, prod_root, prod_db
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{prod_db}`")
    conn.close()
    shutil.rmtree(prod_root, ignore_errors=True)


def test_production_snapshot_restored_into_develop_branch(two_environments, mariadb):
    cli, dev_root, dev_db, prod_root, prod_db = two_environments
    sid = take_snapshot(cli, "production")
    at_snapshot = shop_state(mariadb, prod_db, prod_root)
    _mutate(mariadb, prod_db, prod_root)  # production moves on after its snapshot
    prod_now = shop_state(mariadb, prod_db, prod_root)
    code_before = (dev_root / "app" / "code" / "Module.php").read_text()

    res = cli.run("snapshot:restore", sid, "-e", "production", "--target", "develop-branch",
                  "--yes")
    assert f"Restoring snapshot {sid} of production" in res.stderr
    assert "into develop-branch" in res.stderr
    assert shop_state(mariadb, dev_db, dev_root) == at_snapshot
    assert shop_state(mariadb, prod_db, prod_root) == prod_now  # the source is untouched
    assert (dev_root / "app" / "code" / "Module.php").read_text() == code_before
    assert (dev_root / "post-restore.txt").read_text() == f"production {sid}"
    activity = cli.run("activity:list", "-e", "develop-branch").stdout
    assert f"restored develop-branch from backup {sid} of production" in activity
    assert "restored" not in cli.run("activity:list", "-e", "production").stdout
    aid = res.stderr.split("Activity ")[-1].split()[0]
    log = cli.run("activity:log", aid).stdout
    assert "anonymised customer e-mails" in log


def test_failing_post_restore_command_fails_the_activity_naming_it(two_environments,
                                                                   mariadb):
    cli, dev_root, dev_db, prod_root, prod_db = two_environments
    cfg = dev_root / "snapkeep.toml"
    cfg.write_text(cfg.read_text().replace("'echo anonymised customer e-mails'",
                                           "'echo resetting base URLs; exit 3'"))
    sid = take_snapshot(cli, "production")
    at_snapshot = shop_state(mariadb, prod_db, prod_root)
    res = cli.run("snapshot:restore", sid, "-e", "production", "--target", "develop-branch",
                  "--yes", check=False)
    assert res.returncode != 0
    line = one_line_error(res, "post-restore command", "exit 3")
    assert "echo resetting base URLs" in line
    # the data is in (the command came after the cut-over), and the log says so
    assert shop_state(mariadb, dev_db, dev_root) == at_snapshot


def test_restore_into_another_environment_needs_its_mounts(two_environments, mariadb):
    cli, dev_root, dev_db, prod_root, prod_db = two_environments
    cfg = dev_root / "snapkeep.toml"
    text = cfg.read_text()
    dev_part, prod_part = text.split("[environments.production]")
    cfg.write_text(dev_part.replace('"pub/media", ', "") + "[environments.production]"
                   + prod_part)
    sid = take_snapshot(cli, "production")
    before = shop_state(mariadb, dev_db, dev_root)
    res = cli.run("snapshot:restore", sid, "-e", "production", "--target", "develop-branch",
                  "--yes", check=False)
    one_line_error(res, "environment develop-branch has no mount pub/media", "--mount")
    assert shop_state(mariadb, dev_db, dev_root) == before
    cli.run("snapshot:restore", sid, "-e", "production", "--target", "develop-branch",
            "--yes", "--mount", "var", "--only", "mounts")
    assert tree(dev_root / "var") == tree(prod_root / "var")
