"""The restore cut-over as an application sees it, and the restore time vs mariadb < dump.

    .venv/bin/python bench/cutover.py [--rows 300000] [--threads N]

Starts a private mariadbd, generates a shop database (customers, orders with secondary
keys and a foreign key, order items, a trigger and a view; ``--rows`` orders), takes a
snapkeep dump of it (the *new* data) and a ``mariadb-dump`` of the same data, then makes
the live database the *old* data (fewer orders, a marker row, another trigger body).

During a snapkeep restore a probe thread queries the live database continuously: the
marker, ``COUNT(*)`` of the first 2000 order ids (a primary-key range, so a probe takes
about a millisecond), the view, and the trigger. A probe is good when every
query succeeds and all answers are the old data's or all are the new data's. Prints the
cut-over — the longest interval during which probes failed or saw neither (from the last
good probe before to the first good one after) — the engine's own cut-over figure, and
the restore wall time next to ``mariadb < dump`` of the same data. Not part of the tests.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pymysql

from snapkeep.engines.mysql import MySQLTarget, dump_database, prepare_restore
from snapkeep.progress import NullReporter
from snapkeep.repository import Repository
from snapkeep.sandbox import PrivateMariaDB
from snapkeep.storage import LocalBackend

DB = "shop"

SCHEMA = """
CREATE TABLE customers (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(80) NOT NULL, name VARCHAR(80) CHARACTER SET utf8mb4 NOT NULL,
  created DATETIME NOT NULL, UNIQUE KEY uq_email (email), KEY k_name (name)) ENGINE=InnoDB;
CREATE TABLE orders (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id INT UNSIGNED NOT NULL, placed DATETIME(3) NOT NULL,
  status ENUM('new','paid','shipped') NOT NULL, total DECIMAL(12,2) NOT NULL,
  tax DECIMAL(12,4) NOT NULL, note VARCHAR(200),
  KEY k_placed (placed), KEY k_status_total (status, total), KEY k_customer (customer_id),
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB;
CREATE TABLE order_items (order_id BIGINT NOT NULL, line SMALLINT NOT NULL,
  sku VARCHAR(32) NOT NULL, qty INT NOT NULL, price DECIMAL(12,2) NOT NULL,
  PRIMARY KEY (order_id, line), KEY k_sku (sku)) ENGINE=InnoDB;
CREATE TABLE marker (id INT PRIMARY KEY, v VARCHAR(10) NOT NULL) ENGINE=InnoDB;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20)) ENGINE=InnoDB;
CREATE VIEW first_orders AS SELECT id, status FROM orders WHERE id <= 1000;
CREATE TRIGGER marker_audit AFTER UPDATE ON marker FOR EACH ROW
  INSERT INTO audit (what) VALUES ('new');
"""


def run_sql(conn, *statements: str) -> None:
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)


def generate(server: PrivateMariaDB, rows: int) -> None:
    conn = server.connect()
    run_sql(conn, f"CREATE DATABASE {DB} CHARACTER SET utf8mb4")
    conn.select_db(DB)
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            run_sql(conn, statement)
    customers = max(rows // 4, 1)
    run_sql(conn,
            "INSERT INTO customers (email, name, created) SELECT CONCAT('c', seq, "
            "'@example.com'), CONCAT('Kundin ', seq, ' Ünïcode'), '2020-01-01' + INTERVAL seq "
            f"MINUTE FROM seq_1_to_{customers}",
            "INSERT INTO orders (customer_id, placed, status, total, tax, note) SELECT "
            f"1 + seq % {customers}, '2021-01-01' + INTERVAL seq SECOND, 1 + seq % 3, "
            "seq % 10000 / 7, seq % 997 / 13, IF(seq % 5, NULL, REPEAT('n', seq % 200)) "
            f"FROM seq_1_to_{rows}",
            "INSERT INTO order_items SELECT o.id, s.seq, CONCAT('SKU-', o.id % 5000), s.seq, "
            "o.total / 2 FROM orders o JOIN seq_1_to_2 s",
            "INSERT INTO marker VALUES (1, 'new')")
    conn.close()


class Probe(threading.Thread):
    def __init__(self, server: PrivateMariaDB, old: tuple, new: tuple) -> None:
        super().__init__(daemon=True)
        self.server, self.old, self.new = server, old, new
        self.samples: list[tuple[float, bool]] = []
        self.stop = threading.Event()

    def observe(self, conn) -> tuple:
        with conn.cursor() as cur:
            cur.execute("SELECT v FROM marker WHERE id = 1")
            marker = cur.fetchone()[0]
            cur.execute("SELECT COUNT(*) FROM orders WHERE id <= 2000")
            count = cur.fetchone()[0]
            cur.execute("SELECT COUNT(*) FROM first_orders")
            view = int(cur.fetchone()[0])
            cur.execute("SELECT ACTION_STATEMENT FROM information_schema.TRIGGERS "
                        "WHERE TRIGGER_SCHEMA = %s AND TRIGGER_NAME = 'marker_audit'", (DB,))
            trig = cur.fetchone()
        return marker, count, view, trig[0] if trig else None

    def run(self) -> None:
        conn = None
        while not self.stop.is_set():
            now = time.monotonic()
            try:
                if conn is None:
                    conn = self.server.connect(DB)
                got = self.observe(conn)
                ok = got in (self.old, self.new)
            except pymysql.MySQLError:
                ok = False
                if conn is not None:
                    conn.close()
                conn = None
            self.samples.append((now, ok))
            time.sleep(0.002)

    def worst_gap(self) -> tuple[float, int]:
        worst, bad, last_good = 0.0, 0, None
        in_bad = False
        for at, ok in self.samples:
            if ok:
                if in_bad and last_good is not None:
                    worst = max(worst, at - last_good)
                in_bad = False
                last_good = at
            else:
                bad += 1
                in_bad = True
        return worst, bad


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, PrivateMariaDB(Path(tmp) / "db") as server:
        t = time.perf_counter()
        generate(server, args.rows)
        print(f"generated {DB}: {args.rows} orders, {2 * args.rows} items, "
              f"{max(args.rows // 4, 1)} customers in {time.perf_counter() - t:.1f} s")
        repo = Repository.init(LocalBackend(Path(tmp) / "repo"))
        target = MySQLTarget(server.host, server.port, server.user, None, DB)
        description = dump_database(target, repo, NullReporter())
        repo.flush()
        dump_file = Path(tmp) / "dump.sql"
        with dump_file.open("wb") as out:
            subprocess.run(["mariadb-dump", *server.client_args()[1:], "--single-transaction",
                            "--routines", "--triggers", "--events", DB],
                           stdout=out, check=True)
        conn = server.connect(DB)
        new = Probe(server, (), ()).observe(conn)
        run_sql(conn, "SET foreign_key_checks = 0",
                "DELETE FROM order_items WHERE order_id % 10 = 0",
                "DELETE FROM orders WHERE id % 10 = 0", "UPDATE marker SET v = 'old'",
                "DROP TRIGGER marker_audit",
                "CREATE TRIGGER marker_audit AFTER UPDATE ON marker FOR EACH ROW "
                "INSERT INTO audit (what) VALUES ('old')")
        old = Probe(server, (), ()).observe(conn)
        conn.close()

        probe = Probe(server, old, new)
        probe.start()
        time.sleep(0.2)
        t = time.perf_counter()
        prepared = prepare_restore(target, description, repo, NullReporter(),
                                   threads=args.threads)
        t_prepared = time.perf_counter() - t
        prepared.swap()
        prepared.finish()
        t_restore = time.perf_counter() - t
        time.sleep(0.2)
        probe.stop.set()
        probe.join()
        check = server.connect(DB)
        assert Probe(server, (), ()).observe(check) == new, "the restore did not give the new data"
        check.close()
        gap, bad = probe.worst_gap()

        reload = server.connect()
        run_sql(reload, "CREATE DATABASE shop_reload CHARACTER SET utf8mb4")
        reload.close()
        t = time.perf_counter()
        with dump_file.open("rb") as src:
            subprocess.run([*server.client_args(), "shop_reload"], stdin=src, check=True)
        t_reload = time.perf_counter() - t

        print(f"probes: {len(probe.samples)}, failed or neither old nor new: {bad}")
        print(f"cut-over seen by the application: {gap * 1000:.1f} ms "
              f"(engine's own figure: {(prepared.cutover_seconds or 0) * 1000:.1f} ms)")
        print(f"snapkeep restore ({args.threads} threads): {t_restore:.1f} s "
              f"(load + keys {t_prepared:.1f} s)")
        print(f"mariadb < mariadb-dump output ({dump_file.stat().st_size >> 20} MiB): "
              f"{t_reload:.1f} s")
        print(f"ratio snapkeep / mariadb: {t_restore / t_reload:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
