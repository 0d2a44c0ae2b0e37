"""Restoring some tables (``prepare_restore(tables=…)``): killed with SIGKILL at exact
points of its cut-over, the next ``cleanup_leftovers`` leaves the live database with the
named tables entirely old or entirely new and everything else as it was — including the
foreign keys of other tables that point at the restored ones ("links").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from snapkeep.engines.mysql import MySQLTarget, cleanup_leftovers, dump_database
from snapkeep.engines.mysql.names import journal_name, old_name, shadow_name
from snapkeep.errors import NotFoundError
from snapkeep.progress import NullReporter
from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend
from tests.helpers.dbstate import assert_same, databases, db_state

SCHEMA = [
    "CREATE TABLE store (id INT PRIMARY KEY, name VARCHAR(40)) ENGINE=InnoDB",
    "CREATE TABLE customer (id INT PRIMARY KEY, store_id INT, email VARCHAR(80), "
    " CONSTRAINT fk_customer_store FOREIGN KEY (store_id) REFERENCES store (id)) ENGINE=InnoDB",
    "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, total DECIMAL(12,2), "
    " KEY idx_total (total), "
    " CONSTRAINT fk_order_customer FOREIGN KEY (customer_id) REFERENCES customer (id) "
    " ON DELETE CASCADE) ENGINE=InnoDB",
    "CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(80)) ENGINE=InnoDB",
    "CREATE TRIGGER customer_ai AFTER INSERT ON customer FOR EACH ROW "
    " INSERT INTO audit (note) VALUES (CONCAT('customer ', NEW.id))",
    "CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW "
    " INSERT INTO audit (note) VALUES (CONCAT('order ', NEW.id))",
    "CREATE VIEW customer_orders AS SELECT c.email, o.total FROM customer c "
    " JOIN orders o ON o.customer_id = c.id",
    "INSERT INTO store VALUES (1, 'one'), (2, 'two')",
    "INSERT INTO customer (id, store_id, email) SELECT seq, 1 + seq % 2, "
    " CONCAT('c', seq, '@example.invalid') FROM seq_1_to_400",
    "INSERT INTO orders SELECT seq, 1 + seq % 400, seq * 1.5 FROM seq_1_to_900",
]

CHANGES = [
    "UPDATE customer SET email = CONCAT('changed-', email) WHERE id <= 100",
    "DELETE FROM orders WHERE id > 800",
    "INSERT INTO audit (note) VALUES ('after the snapshot')",
    "UPDATE store SET name = 'changed'",
    "DROP TRIGGER customer_ai",
    "CREATE TRIGGER customer_bu BEFORE UPDATE ON customer FOR EACH ROW SET NEW.email = "
    "LOWER(NEW.email)",
]

RESTORE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from snapkeep.engines.mysql import MySQLTarget, prepare_restore
    from snapkeep.progress import NullReporter
    from snapkeep.repository import Repository
    from snapkeep.storage import LocalBackend

    repo_dir, desc_file, port, db, then, tables = sys.argv[1:]
    target = MySQLTarget("127.0.0.1", int(port), "root", None, db)
    repo = Repository.open(LocalBackend(repo_dir))
    p = prepare_restore(target, json.loads(Path(desc_file).read_text()), repo,
                        NullReporter(), threads=2, tables=tables.split(","))
    p.swap()
    p.rollback() if then == "rollback" else p.finish()
""")

SCOPE = ["customer"]  # a parent of orders (a link) and a child of store


def _run_sql(conn, statements: list[str]) -> None:
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
    conn.commit()


def _links(conn, db: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME, CONSTRAINT_NAME, UNIQUE_CONSTRAINT_SCHEMA, "
                    "REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
                    "WHERE CONSTRAINT_SCHEMA = %s ORDER BY 1, 2", (db,))
        return list(cur.fetchall())


def _mixed(new: dict, old: dict, tables: list[str]) -> dict:
    """``old`` with ``tables`` (and their triggers) as in ``new``."""
    out = json.loads(json.dumps(old, default=str))
    fresh = json.loads(json.dumps(new, default=str))
    for t in tables:
        out["tables"][t] = fresh["tables"][t]
    out["triggers"] = {n: v for n, v in out["triggers"].items()
                       if n not in _trigger_tables(old, tables)}
    out["triggers"].update({n: v for n, v in fresh["triggers"].items()
                            if n in _trigger_tables(new, tables)})
    out["trigger_order"] = sorted(
        [r for r in out["trigger_order"] if r[0] not in tables]
        + [r for r in fresh["trigger_order"] if r[0] in tables])
    return out


def _trigger_tables(state: dict, tables: list[str]) -> set[str]:
    return {r[4] for r in state["trigger_order"] if r[0] in tables}


def _norm(state: dict) -> dict:
    s = json.loads(json.dumps(state, default=str))
    s["trigger_order"] = sorted(s["trigger_order"])
    return s


@pytest.fixture
def scenario(mariadb, fresh_db, tmp_path):
    conn = mariadb.connect(fresh_db)
    _run_sql(conn, SCHEMA)
    new = db_state(conn, fresh_db)
    links_before = _links(conn, fresh_db)
    repo = Repository.init(LocalBackend(tmp_path / "repo"))
    target = MySQLTarget(mariadb.host, mariadb.port, mariadb.user, None, fresh_db)
    description = dump_database(target, repo, NullReporter())
    repo.flush()
    _run_sql(conn, CHANGES)
    old = db_state(conn, fresh_db)
    desc_file = tmp_path / "desc.json"
    desc_file.write_text(json.dumps(description))

    def run(point: str | None, then: str = "finish") -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        if point:
            env["SNAPKEEP_CRASH_AT"] = point
        res = subprocess.run([sys.executable, "-c", RESTORE, str(tmp_path / "repo"),
                              str(desc_file), str(mariadb.port), fresh_db, then,
                              ",".join(SCOPE)],
                             env=env, capture_output=True, text=True, timeout=300, check=False)
        expected = -signal.SIGKILL if point else 0
        assert res.returncode == expected, f"{point}:\n{res.stderr[-6000:]}"

    return conn, target, new, old, links_before, description, repo, run


def settle(conn, target, db: str) -> dict:
    cleanup_leftovers(target, NullReporter())
    cleanup_leftovers(target, NullReporter())  # idempotent
    assert {shadow_name(db), old_name(db), journal_name(db)} & databases(conn) == set()
    return db_state(conn, db)


def test_table_restore_replaces_only_the_named_tables(scenario, fresh_db):
    conn, _target, new, old, links, _d, _r, run = scenario
    run(None)
    assert_same(_norm(db_state(conn, fresh_db)), _norm(_mixed(new, old, SCOPE)))
    assert _links(conn, fresh_db) == links  # every foreign key points into this database
    with conn.cursor() as cur:  # the restored rows satisfy the kept foreign keys
        cur.execute("SELECT COUNT(*) FROM orders o LEFT JOIN customer c ON c.id = "
                    "o.customer_id WHERE c.id IS NULL")
        assert cur.fetchone()[0] == 0


@pytest.mark.parametrize("point", ["mysql.loading", "mysql.journal-written",
                                   "mysql.triggers-dropped"])
def test_killed_before_the_rename_leaves_everything_old(scenario, fresh_db, point):
    conn, target, _new, old, links, _d, _r, run = scenario
    run(point)
    assert_same(_norm(settle(conn, target, fresh_db)), _norm(old), "after cleanup")
    assert _links(conn, fresh_db) == links


@pytest.mark.parametrize("point", ["mysql.after-rename", "mysql.objects-half"])
def test_killed_after_the_rename_completes_the_named_tables(scenario, fresh_db, point):
    conn, target, new, old, links, _d, _r, run = scenario
    run(point)
    assert_same(_norm(settle(conn, target, fresh_db)), _norm(_mixed(new, old, SCOPE)))
    assert _links(conn, fresh_db) == links


@pytest.mark.parametrize("point", [None, "mysql.rollback-renamed"])
def test_rollback_puts_the_previous_tables_and_links_back(scenario, fresh_db, point):
    conn, target, _new, old, links, _d, _r, run = scenario
    if point:
        run(point, then="rollback")
        state = settle(conn, target, fresh_db)
    else:
        run(None, then="rollback")
        state = db_state(conn, fresh_db)
    assert_same(_norm(state), _norm(old))
    assert _links(conn, fresh_db) == links


def test_unknown_table_is_refused_before_anything_is_created(scenario, fresh_db, mariadb):
    conn, target, _new, old, _links, description, repo, _run = scenario
    from snapkeep.engines.mysql import prepare_restore
    with pytest.raises(NotFoundError, match="no table `nope`"):
        prepare_restore(target, description, repo, NullReporter(), tables=["nope"])
    assert shadow_name(fresh_db) not in databases(conn)
    assert_same(_norm(db_state(conn, fresh_db)), _norm(old))
