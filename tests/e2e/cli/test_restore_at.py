"""``snapkeep snapshot:restore --at TIME|GTID`` against a private MariaDB writing a binary
log, archived by a running ``binlog:follow`` (docs/pitr.md, "Restore to a point in time").

One scenario: snapshots S1, S2; writes at T1 (rows, rows a trigger writes into another
table, DDL: a new column, a new view, a new table with a trigger, a dropped view, a changed
routine); T2 noted (the clock past a whole second); writes at T3 (more rows and DDL).
Every restore ``--at T2`` must give exactly the fingerprint taken at T2 (``db_state``:
tables, rows, views, triggers, routines, events).
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from snapkeep.repository import BinlogArchive, Repository
from snapkeep.sandbox import PrivateMariaDB
from snapkeep.storage import LocalBackend
from tests.helpers.binlog import binlog_files, binlog_server, master_status
from tests.helpers.dbstate import assert_same, db_state
from tests.helpers.shop import Cli, cli_env, one_line_error
from tests.helpers.sql import run


def _project(tmp_path, server, point_in_time=True, engine: str | None = None) -> Cli:
    """production (archived) and staging on ``server``; ``engine`` set in both when given."""
    base = tmp_path / "project"
    base.mkdir()
    chosen = f'engine = "{engine}"\n' if engine else ""
    (base / "snapkeep.toml").write_text(
        '[project]\nid = "shop"\nrepository = "repo"\n\n'
        '[repository]\nkey_file = "repository.key"\n\n'
        '[environments.production]\ntype = "production"\nroot = "."\n'
        f'database = "mysql://root@127.0.0.1:{server.port}/shop"\n{chosen}'
        f"point_in_time = {'true' if point_in_time else 'false'}\nbinlog_interval = 0.3\n\n"
        '[environments.staging]\ntype = "staging"\nroot = "."\n'
        f'database = "mysql://root@127.0.0.1:{server.port}/shop_copy"\n{chosen}')
    Repository.init(LocalBackend(base / "repo"), key_file=base / "repository.key")
    return Cli(base, cli_env())


def _snapshot(cli: Cli, *args: str, log: list[str] | None = None) -> str:
    res = cli.run("snapshot:create", "-e", "production", *args)
    if log is not None:
        log.append(res.stdout + res.stderr)
    return res.stdout.strip().splitlines()[-1].split(": ")[1]


def _wait_archived(tmp_path, server, timeout=60.0) -> None:
    repo = Repository.open(LocalBackend(tmp_path / "project" / "repo"),
                           key_file=tmp_path / "project" / "repository.key")
    archive = BinlogArchive(repo, "production")
    deadline = time.monotonic() + timeout
    while True:
        last = archive.last()
        if last is not None and last.kind == "segment" and \
                (last.file, last.end) == master_status(server):
            return
        assert time.monotonic() < deadline, f"not archived: {last} vs {master_status(server)}"
        time.sleep(0.1)


def _next_second() -> datetime:
    """Sleep past the next whole second; that second (UTC): every event written before the
    call is timestamped before it, every one after at or after it."""
    now = time.time()
    t = int(now) + 1
    time.sleep(t - now + 0.05)
    return datetime.fromtimestamp(t, UTC)


def _state(server, db: str = "shop") -> dict:
    conn = server.connect()
    try:
        return db_state(conn, db)
    finally:
        conn.close()


def _gtid(server) -> str:
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            return str(cur.fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def scenario(tmp_path):
    server = binlog_server(tmp_path / "server")
    conn = server.connect()
    run(conn, "CREATE DATABASE shop", "USE shop",
        "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, v INT, "
        "label VARCHAR(20)) ENGINE=InnoDB",
        "CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, order_id INT, "
        "what VARCHAR(20)) ENGINE=InnoDB",
        "CREATE TABLE gone (id INT PRIMARY KEY, v INT) ENGINE=InnoDB",
        "CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW "
        "INSERT INTO audit (order_id, what) VALUES (NEW.id, 'insert')",
        "CREATE VIEW v_orders AS SELECT id, v FROM orders WHERE v > 10",
        "CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
        "CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' "
        "DO DELETE FROM gone",
        "INSERT INTO orders (v, label) VALUES (1, 'a'), (20, 'b'), (30, 'c')",
        "INSERT INTO gone VALUES (1, 1), (2, 2)")
    cli = _project(tmp_path, server)
    follower = cli.popen("binlog:follow", "-e", "production")
    logs: list[str] = []  # the snapshots' output, for a failure's message
    try:
        s1 = _snapshot(cli, log=logs)
        run(conn, "USE shop", "INSERT INTO orders (v, label) VALUES (40, 'd'), (5, 'e')",
            "UPDATE orders SET v = v + 1 WHERE id = 1")
        s2 = _snapshot(cli, log=logs)
        # T1: rows (trigger rows into audit), updates, deletes, DDL
        run(conn, "USE shop",
            "INSERT INTO orders (v, label) VALUES (50, 'f'), (60, 'g')",
            "UPDATE orders SET label = 'changed' WHERE v > 25",
            "DELETE FROM orders WHERE id = 2",
            "ALTER TABLE orders ADD COLUMN note VARCHAR(30) DEFAULT 'none'",
            "INSERT INTO orders (v, label, note) VALUES (70, 'h', 'with note')",
            "CREATE VIEW v_big AS SELECT id, label FROM orders WHERE v >= 50",
            "CREATE TABLE fresh (id INT PRIMARY KEY, name VARCHAR(10)) ENGINE=InnoDB",
            "INSERT INTO fresh VALUES (1, 'one'), (2, 'two')",
            "CREATE TRIGGER fresh_bu BEFORE UPDATE ON fresh FOR EACH ROW "
            "SET NEW.name = UPPER(NEW.name)",
            "UPDATE fresh SET name = 'uno' WHERE id = 1",
            "DROP VIEW v_orders",
            "DROP FUNCTION twice",
            "CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x + x",
            "ALTER EVENT nightly DISABLE")
        t2 = _next_second()
        state2 = _state(server)
        gtid2 = _gtid(server)
        # T3: more rows and DDL after T2
        run(conn, "USE shop",
            "INSERT INTO orders (v, label) VALUES (80, 'i'), (90, 'j')",
            "UPDATE fresh SET name = 'dos' WHERE id = 2",
            "DELETE FROM audit WHERE id = 1",
            "DROP TABLE gone",
            "ALTER TABLE audit ADD COLUMN seen INT DEFAULT 0",
            "CREATE VIEW v_late AS SELECT 1 AS one")
        state3 = _state(server)
        _next_second()  # an event after the writes would not be needed; the time is past T3
        _wait_archived(tmp_path, server)
        yield {"server": server, "cli": cli, "s1": s1, "s2": s2, "t2": t2, "state2": state2,
               "state3": state3, "gtid2": gtid2, "tmp_path": tmp_path, "follower": follower,
               "logs": logs}
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.wait(60)
        conn.close()
        server.stop()


def _restore(cli: Cli, *args: str):
    return cli.run("snapshot:restore", "-e", "production", "--yes", *args)


def test_restore_at_t2_is_exactly_the_database_at_t2(scenario):
    server, cli, t2 = scenario["server"], scenario["cli"], scenario["t2"]
    state2, state3 = scenario["state2"], scenario["state3"]
    at = t2.strftime("%Y-%m-%dT%H:%M:%SZ")

    # --table: only orders as of T2; the other tables keep their T3 data and shape
    res = _restore(cli, "--at", at, "--table", "orders")
    first = res.stdout + res.stderr
    assert "Replayed" in first
    now = _state(server)
    assert_same(now["tables"]["orders"], state2["tables"]["orders"], "orders")
    for name in ("audit", "fresh", "v_late"):
        assert_same(now["tables"][name], state3["tables"][name], name)
    assert "gone" not in now["tables"]

    # the whole database, from the latest snapshot before T2 (S2)
    res = _restore(cli, "--at", at)
    out = res.stdout + res.stderr
    if f"base snapshot {scenario['s2']}" not in out:  # the latest one before T2
        window = cli.run("environment:info", "-e", "production", "--format", "json").stdout
        snapshots = "\n".join(scenario["logs"])
        pytest.fail(f"S1 {scenario['s1']}, S2 {scenario['s2']}, T2 {at}; the restore chose "
                    f"another base:\n{out}\nthe window:\n{window}\nthe snapshots' output:\n"
                    f"{snapshots}\nthe first restore's output:\n{first}")
    replayed = [line for line in out.splitlines() if line.startswith("Replayed ")]
    assert replayed and "transactions" in replayed[0] and "; the last one at " in replayed[0]
    assert_same(_state(server), state2, "--at T2")

    # another environment as of T2, from production's archive
    _restore(cli, "--at", at, "--target", "staging")
    copy = _state(server, "shop_copy")
    assert_same({k: v for k, v in copy.items() if k != "database"},
                {k: v for k, v in state2.items() if k != "database"}, "--target staging")

    # from a base two snapshots back, after the database was dropped
    run(server.connect(), "DROP DATABASE shop")
    _restore(cli, scenario["s1"], "--at", at)
    assert_same(_state(server), state2, "--at T2 from S1, database dropped")

    # up to a GTID: the last transaction before T2, included
    run(server.connect(), "INSERT INTO shop.orders (v) VALUES (999)")
    _restore(cli, "--at", scenario["gtid2"])
    assert_same(_state(server), state2, "--at GTID")

    # the restores above are in the binlog since S2: a replay from S2 cannot cross them
    tmp_path = scenario["tmp_path"]
    run(server.connect(), "INSERT INTO shop.orders (v) VALUES (1000)")
    t4 = _next_second()
    run(server.connect(), "INSERT INTO shop.orders (v) VALUES (1001)")
    _wait_archived(tmp_path, server)
    before = _state(server)
    res = cli.run("snapshot:restore", "-e", "production", "--yes", "--at",
                  t4.strftime("%Y-%m-%dT%H:%M:%SZ"), check=False)
    one_line_error(res, "was restored by snapkeep", "snapshot taken after that restore")
    assert_same(_state(server), before, "after the refused crossing")
    # a snapshot taken after them is a base again
    _snapshot(cli)
    run(server.connect(), "UPDATE shop.orders SET v = -v WHERE v > 900")
    t5 = _next_second()
    state5 = _state(server)
    run(server.connect(), "DELETE FROM shop.orders")
    _wait_archived(tmp_path, server)
    _restore(cli, "--at", t5.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert_same(_state(server), state5, "--at T5 from the snapshot after the restores")


def test_bad_points_are_refused_in_one_line_with_nothing_touched(scenario):
    server, cli, t2 = scenario["server"], scenario["cli"], scenario["t2"]
    before = _state(server)
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    one_line_error(_restore_fail(cli, "--at", future), "is in the future", "recoverable from")
    one_line_error(_restore_fail(cli, "--at", "2001-01-01T00:00:00Z"),
                   "before the recoverable window", "recoverable from")
    one_line_error(_restore_fail(cli, "--at", "yesterday-ish"), "neither a time nor a GTID")
    one_line_error(_restore_fail(cli, "--at", t2.isoformat(), "--only", "mounts"),
                   "--at restores the database")
    one_line_error(_restore_fail(cli, "--at", "0-1-999999"), "not in the binlog archive")
    one_line_error(_restore_fail(cli, "--at", t2.isoformat(), "nosuchsnapshot"),
                   "nosuchsnapshot")
    assert_same(_state(server), before, "after the refusals")
    # after the last archived event, with everything the server wrote archived (lag 0):
    # the archive's end is the point
    _restore(cli, "--at", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert_same(_state(server), before, "--at now, the archive complete")


def test_a_restore_asked_right_after_the_damage_waits_for_the_follower(scenario):
    """The last writes are not archived yet when the restore is asked (the follower is
    held here; it commits every binlog_interval): the restore waits for the running
    follower instead of refusing a point after the archive's end."""
    server, cli, follower = scenario["server"], scenario["cli"], scenario["follower"]
    follower.send_signal(signal.SIGSTOP)
    timer = threading.Timer(1.0, follower.send_signal, (signal.SIGCONT,))
    try:
        run(server.connect(), "INSERT INTO shop.orders (v, label) VALUES (555, 'late')")
        t = _next_second()
        wanted = _state(server)
        run(server.connect(), "DELETE FROM shop.orders")  # the damage
        timer.start()
        _restore(cli, "--at", t.strftime("%Y-%m-%dT%H:%M:%SZ"))
    finally:
        timer.cancel()
        follower.send_signal(signal.SIGCONT)
    assert_same(_state(server), wanted, "--at a second before the damage")


def test_a_statement_naming_the_database_in_the_window_is_refused(scenario):
    """``--rewrite-db`` renames only the default database: a DDL naming its database
    (``CREATE TABLE shop.t`` from another default database) cannot be replayed into the
    shadow, so it is refused rather than applied to the live database or skipped."""
    server, cli, tmp_path = scenario["server"], scenario["cli"], scenario["tmp_path"]
    run(server.connect(), "CREATE DATABASE other", "USE other",
        "CREATE TABLE shop.extra (id INT PRIMARY KEY)")
    t = _next_second()
    run(server.connect(), "INSERT INTO shop.orders (v) VALUES (7)")
    _wait_archived(tmp_path, server)
    before = _state(server)
    one_line_error(_restore_fail(cli, "--at", t.strftime("%Y-%m-%dT%H:%M:%SZ")),
                   "names its object with a database", "restore to a time before it")
    assert_same(_state(server), before, "after the refusal")
    # before it, the same window restores
    _restore(cli, "--at", scenario["t2"].strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert_same(_state(server), scenario["state2"], "--at T2")


def _restore_fail(cli: Cli, *args: str):
    res = cli.run("snapshot:restore", "-e", "production", "--yes", *args, check=False)
    assert res.returncode != 0
    return res


def test_a_server_without_log_bin_or_without_point_in_time_is_refused(tmp_path):
    with PrivateMariaDB(tmp_path / "plain") as plain:
        run(plain.connect(), "CREATE DATABASE shop",
            "CREATE TABLE shop.a (id INT PRIMARY KEY)", "INSERT INTO shop.a VALUES (1)")
        cli = _project(tmp_path, plain)
        _snapshot(cli)
        before = db_state(plain.connect(), "shop")
        res = cli.run("snapshot:restore", "-e", "production", "--yes", "--at",
                      "2026-01-01T00:00:00Z", check=False)
        one_line_error(res, "log_bin is off")
        (tmp_path / "project" / "snapkeep.toml").write_text(
            (tmp_path / "project" / "snapkeep.toml").read_text()
            .replace("point_in_time = true", "point_in_time = false"))
        res = cli.run("snapshot:restore", "-e", "production", "--yes", "--at",
                      "2026-01-01T00:00:00Z", check=False)
        one_line_error(res, "point_in_time = true")
        assert_same(db_state(plain.connect(), "shop"), before, "after the refusals")


def test_a_point_inside_a_gap_is_refused_naming_it(tmp_path):
    """Binlogs purged on the server before they were archived: no base reaches the lost
    stretch, so a restore into it is refused with the gap, nothing touched."""
    server = binlog_server(tmp_path / "server")
    conn = server.connect()
    run(conn, "CREATE DATABASE shop", "USE shop",
        "CREATE TABLE a (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
        "INSERT INTO a (v) VALUES (1)")
    cli = _project(tmp_path, server)
    follower = cli.popen("binlog:follow", "-e", "production")
    try:
        _snapshot(cli)
        old_state = _state(server)
        old = _next_second()
        run(conn, "INSERT INTO a (v) VALUES (2)")
        _wait_archived(tmp_path, server)
        follower.send_signal(signal.SIGTERM)
        follower.wait(60)
        run(conn, "INSERT INTO a (v) VALUES (3)")
        lost = _next_second()
        # the follower stopped and the server wrote more: a point after the archive's end
        one_line_error(_restore_fail(cli, "--at", lost.strftime("%Y-%m-%dT%H:%M:%SZ")),
                       "is after the last archived event", "the follower lags",
                       "recoverable from")
        run(conn, "INSERT INTO a (v) VALUES (4)", "FLUSH BINARY LOGS")
        newest = master_status(server)[0]
        deadline = time.monotonic() + 30
        while binlog_files(server)[0] != newest:  # the stopped replica's dump thread may
            run(conn, f"PURGE BINARY LOGS TO '{newest}'")  # hold the file a moment
            assert time.monotonic() < deadline, binlog_files(server)
            time.sleep(0.2)
        follower = cli.popen("binlog:follow", "-e", "production")
        run(conn, "INSERT INTO a (v) VALUES (5)")
        _next_second()
        run(conn, "INSERT INTO a (v) VALUES (6)")
        _wait_archived(tmp_path, server)
        before = _state(server)
        at = lost.strftime("%Y-%m-%dT%H:%M:%SZ")
        # no snapshot since the gap: no window at all
        one_line_error(_restore_fail(cli, "--at", at), "since the gap after",
                       "take a snapshot")
        # a snapshot after the gap opens a window, which does not reach the lost stretch
        _snapshot(cli)
        run(conn, "INSERT INTO a (v) VALUES (7)")
        _next_second()
        run(conn, "INSERT INTO a (v) VALUES (8)")
        _wait_archived(tmp_path, server)
        before = _state(server)
        one_line_error(_restore_fail(cli, "--at", at), "falls where binlogs are missing",
                       "purged before they were archived", "recoverable from")
        assert_same(_state(server), before, "after the refusal")
        # the stretch before the gap is still recoverable, from the snapshot before it
        _restore(cli, "--at", old.strftime("%Y-%m-%dT%H:%M:%SZ"))
        assert_same(_state(server), old_state, "--at a point before the gap")
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.wait(60)
        conn.close()
        server.stop()
