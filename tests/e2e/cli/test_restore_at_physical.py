"""``snapshot:restore --at`` from a base snapshot taken physically (docs/physical.md,
docs/pitr.md): the shadow is built from the pages and the logical part, then the archived
binlog is replayed from the snapshot's position — which must be exactly the point the pages
and the rows are of, also for a ``--live`` snapshot taken under writes."""

from __future__ import annotations

import signal
import threading
from datetime import datetime

import pytest

from snapkeep.repository import Repository
from snapkeep.storage import LocalBackend
from tests.e2e.cli.test_restore_at import (
    _next_second,
    _project,
    _snapshot,
    _state,
    _wait_archived,
)
from tests.helpers.binlog import binlog_server
from tests.helpers.dbstate import assert_same
from tests.helpers.orders import order_writer
from tests.helpers.shop import Cli
from tests.helpers.sql import run


def _description(tmp_path, snapshot_id: str) -> dict:
    repo = Repository.open(LocalBackend(tmp_path / "project" / "repo"),
                           key_file=tmp_path / "project" / "repository.key")
    return repo.load_snapshot(snapshot_id).services["database"]


def _at(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _restore(cli: Cli, *args: str):
    res = cli.run("snapshot:restore", "-e", "production", "--yes", *args)
    return res.stdout + res.stderr


@pytest.fixture
def shop(tmp_path):
    server = binlog_server(tmp_path / "server")
    conn = server.connect()
    run(conn, "CREATE DATABASE shop", "USE shop",
        "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, v INT, "
        "label VARCHAR(20)) ENGINE=InnoDB",
        "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, order_id INT NOT NULL, "
        "n INT, KEY (order_id)) ENGINE=InnoDB",
        "CREATE TABLE counter (name VARCHAR(10) PRIMARY KEY, n INT) ENGINE=InnoDB",
        "CREATE TABLE order_log (order_id INT PRIMARY KEY) ENGINE=MyISAM",
        "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT, FULLTEXT KEY (body)) "
        "ENGINE=InnoDB",
        "CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW "
        "UPDATE counter SET n = n + 1 WHERE name = 'triggered'",
        "CREATE VIEW v_orders AS SELECT id, v FROM orders WHERE v > 10",
        "INSERT INTO counter VALUES ('orders', 3), ('triggered', 0)",
        "INSERT INTO orders (v, label) VALUES (1, 'a'), (20, 'b'), (30, 'c')",
        "INSERT INTO items (order_id, n) VALUES (1, 1), (2, 1), (3, 1)",
        "INSERT INTO order_log VALUES (1), (2), (3)",
        "INSERT INTO notes VALUES (1, 'first note')")
    cli = _project(tmp_path, server, engine="physical")
    follower = cli.popen("binlog:follow", "-e", "production")
    try:
        yield server, cli, conn
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.wait(60)
        conn.close()
        server.stop()


def test_restore_at_from_a_physical_base_is_exactly_the_state_at_that_time(shop, tmp_path):
    server, cli, conn = shop
    base = _snapshot(cli)
    d = _description(tmp_path, base)
    assert d["engine"] == "physical" and "physical" in next(
        t for t in d["tables"] if t["name"] == "orders")
    # not live: the tablespaces read in place while the writes are held, one point with
    # the rows (no mariadb-backup, so no position of its own to compare with)
    assert d["binlog"]["file"] and "pages_binlog" not in d
    # rows into paged, MyISAM and FULLTEXT (rows) tables, a trigger, then DDL
    run(conn, "USE shop",
        "INSERT INTO orders (v, label) VALUES (40, 'd'), (50, 'e')",
        "UPDATE orders SET label = 'changed' WHERE v > 25",
        "DELETE FROM items WHERE order_id = 1",
        "INSERT INTO order_log VALUES (4), (5)",
        "INSERT INTO notes VALUES (2, 'second note')",
        "ALTER TABLE orders ADD COLUMN note VARCHAR(30) DEFAULT 'none'",
        "INSERT INTO orders (v, label, note) VALUES (70, 'h', 'with note')",
        "CREATE TABLE fresh (id INT PRIMARY KEY, name VARCHAR(10)) ENGINE=InnoDB",
        "INSERT INTO fresh VALUES (1, 'one')",
        "DROP VIEW v_orders",
        "CREATE VIEW v_big AS SELECT id, label FROM orders WHERE v >= 50")
    t = _next_second()
    wanted = _state(server)
    run(conn, "USE shop", "INSERT INTO orders (v) VALUES (80), (90)",
        "DELETE FROM counter", "DROP TABLE fresh", "UPDATE order_log SET order_id = -order_id",
        "ALTER TABLE items ADD COLUMN late INT")
    later = _state(server)
    _next_second()
    _wait_archived(tmp_path, server)

    # --table: only orders as of T; the others keep their later data and shape
    out = _restore(cli, "--at", _at(t), "--table", "orders")
    assert "Replayed" in out
    now = _state(server)
    assert_same(now["tables"]["orders"], wanted["tables"]["orders"], "orders at T")
    for name in ("items", "counter", "order_log"):
        assert_same(now["tables"][name], later["tables"][name], name)

    out = _restore(cli, "--at", _at(t))
    assert f"base snapshot {base}" in out
    assert_same(_state(server), wanted, "--at T from a physical base")

    # another environment on the same server as of T, its pages placed there too
    _restore(cli, "--at", _at(t), "--target", "staging")
    copy = _state(server, "shop_copy")
    assert_same({k: v for k, v in copy.items() if k != "database"},
                {k: v for k, v in wanted.items() if k != "database"}, "--target staging")


def test_restore_at_from_a_live_physical_snapshot_taken_under_writes(shop, tmp_path):
    """The writer commits orders with their items, bumps the counter and logs each order
    in a MyISAM table throughout ``snapshot:create --live``: replayed from the snapshot's
    position, nothing is applied twice or lost."""
    server, cli, conn = shop
    stop = threading.Event()
    written = []

    thread = threading.Thread(target=order_writer(
        lambda: server.connect("shop"), stop, written,
        "INSERT INTO orders (v, label) VALUES (7, 'live')", items=2))
    thread.start()
    try:
        base = _snapshot(cli, "--live")
    finally:
        stop.set()
        thread.join(60)
    assert all(isinstance(w, int) for w in written), written[-1]
    assert len(written) > 5, "the writer wrote while the snapshot ran"
    d = _description(tmp_path, base)
    assert d["engine"] == "physical" and "binlog" in d
    run(conn, "USE shop", "UPDATE orders SET v = v + 1 WHERE id % 3 = 0",
        "INSERT INTO order_log VALUES (-1)")
    t = _next_second()
    wanted = _state(server)
    run(conn, "USE shop", "DELETE FROM orders", "DELETE FROM order_log")
    _next_second()
    _wait_archived(tmp_path, server)
    out = _restore(cli, "--at", _at(t))
    assert f"base snapshot {base}" in out
    assert_same(_state(server), wanted, "--at T from a live physical base")
