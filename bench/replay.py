"""Binlog replay: snapkeep's replayer against ``mariadb-binlog | mariadb`` (issue 16: ≥ 2×).

On a private MariaDB with the binary log on (row format, the server's defaults otherwise:
``innodb_flush_log_at_trx_commit=1``, unless ``--flush-at-commit``), a shop-like workload
writes ``--transactions`` transactions to database ``src`` (a stored procedure: per
transaction an order and 1–3 items inserted, every third a customer updated, every tenth
an old order's items deleted). Fresh copies of the start state, made before the start
position, are then replayed into, ``--rounds`` times each way in alternating order:

- ``mariadb-binlog``: ``mariadb-binlog --no-defaults --skip-gtid-strict-mode
  --database=src --rewrite-db='src->DST' --start-position=P FILES… | mariadb
  --no-defaults --socket=… DST`` — what docs/pitr.md names as the baseline;
- ``snapkeep``: ``engines/mysql/binlog_replay.replay`` over the same files, given as
  pieces of at most 16 MiB cut at event boundaries (as the archive's segments are),
  their bytes read inside the timed part.

Each copy is checked against ``src`` (``CHECKSUM TABLE`` of every table) after its run.
Printed: wall seconds median (min–max) per method, client CPU seconds, the ratio.

    .venv/bin/python bench/replay.py --transactions 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OPTIONS = ("--log-bin=mysql-bin", "--binlog-format=ROW", "--server-id=1",
           "--max-binlog-size=64M", "--innodb-buffer-pool-size=512M")

SCHEMA = [
    """CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100), balance DECIMAL(12,2),
        updated DATETIME(6)) ENGINE=InnoDB""",
    """CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer INT,
        total DECIMAL(12,2), note VARCHAR(200), created DATETIME(6), KEY (customer))""",
    """CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, order_id BIGINT,
        sku VARCHAR(20), qty INT, price DECIMAL(10,2), KEY (order_id))""",
    "INSERT INTO customers SELECT seq, CONCAT('customer ', seq), 0, NOW(6) FROM seq_1_to_1000",
]

PROCEDURE = """CREATE PROCEDURE gen(n INT)
BEGIN
  DECLARE i INT DEFAULT 0;
  DECLARE o BIGINT;
  WHILE i < n DO
    START TRANSACTION;
    INSERT INTO orders (customer, total, note, created)
      VALUES (1 + i % 1000, ROUND(RAND() * 1000, 2), REPEAT('n', 20 + i % 80), NOW(6));
    SET o = LAST_INSERT_ID();
    INSERT INTO items (order_id, sku, qty, price)
      SELECT o, CONCAT('SKU-', FLOOR(RAND() * 100000)), 1 + seq, ROUND(RAND() * 100, 2)
      FROM seq_1_to_3 WHERE seq <= 1 + i % 3;
    IF i % 3 = 0 THEN
      UPDATE customers SET balance = balance + 1, updated = NOW(6) WHERE id = 1 + i % 1000;
    END IF;
    IF i % 10 = 0 THEN
      DELETE FROM items WHERE order_id = o - 50;
    END IF;
    COMMIT;
    SET i = i + 1;
  END WHILE;
END"""


def _run(conn: Any, *statements: str) -> list[Any]:
    out: list[Any] = []
    with conn.cursor() as cur:
        for s in statements:
            cur.execute(s)
            out = list(cur.fetchall())
    return out


def _checksums(conn: Any, db: str) -> list[Any]:
    return _run(conn, f"CHECKSUM TABLE {db}.customers, {db}.orders, {db}.items EXTENDED")


def _pieces(datadir: Path, files: list[str], limit: int = 16 << 20) -> list[Any]:
    """The files as the archive's segments: pieces of at most ``limit`` bytes at event
    boundaries (found here, outside the timed part; the bytes are read inside it)."""
    from snapkeep.engines.mysql.binlog_events import events
    from snapkeep.engines.mysql.binlog_replay_types import ReplayPiece

    out = []
    for name in files:
        path = datadir / name
        data = path.read_bytes()
        at = 4
        for _start, end in events(data, 4):
            if end - at >= limit:
                out.append((name, at, end))
                at = end
        if at < len(data):
            out.append((name, at, len(data)))

    def reader(path: Path, start: int, end: int) -> Any:
        def read() -> list[bytes]:
            with path.open("rb") as f:
                f.seek(start)
                return [f.read(end - start)]
        return read

    return [ReplayPiece(n, s, e, reader(datadir / n, s, e)) for n, s, e in out]


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_stock(server: Any, files: list[str], position: int, dst: str) -> tuple[float, float]:
    paths = [str(server.datadir / f) for f in files]
    # --skip-gtid-strict-mode: with --start-position and several files, mariadb-binlog
    # 10.11's GTID audit rejects the second file ("out of order GTID"); it only audits
    binlog = ["mariadb-binlog", "--no-defaults", "--skip-gtid-strict-mode", "--database=src",
              f"--rewrite-db=src->{dst}", f"--start-position={position}", *paths]
    client = [*server.client_args(), dst]
    cpu0, t0 = _cpu_children(), time.perf_counter()
    producer = subprocess.Popen(binlog, stdout=subprocess.PIPE)
    consumer = subprocess.run(client, stdin=producer.stdout, capture_output=True)
    assert producer.stdout is not None
    producer.stdout.close()
    if producer.wait() != 0 or consumer.returncode != 0:
        raise SystemExit(f"the stock pipeline failed ({shlex.join(binlog)}): "
                         f"{consumer.stderr.decode()[-500:]}")
    return time.perf_counter() - t0, _cpu_children() - cpu0


def run_snapkeep(server: Any, files: list[str], position: int, dst: str,
                 threads: int) -> tuple[float, float]:
    from snapkeep.engines.mysql.binlog_replay import replay
    from snapkeep.engines.mysql.binlog_replay_types import ReplayStop
    from snapkeep.engines.mysql.target import MySQLTarget
    from snapkeep.progress import NullReporter

    pieces = _pieces(server.datadir, files)
    target = MySQLTarget(server.host, server.port, server.user, None, dst)
    cpu0, t0 = _cpu_self(), time.perf_counter()
    replay(target, pieces, start_file=files[0], start_position=position, source_db="src",
           into_db=dst, tables=None, stop=ReplayStop(), reporter=NullReporter(),
           threads=threads)
    return time.perf_counter() - t0, _cpu_self() - cpu0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--transactions", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--flush-at-commit", type=int, default=1, choices=[0, 1, 2],
                   help="innodb_flush_log_at_trx_commit while replaying (1: the default)")
    p.add_argument("--scratch", default=None, help="where the temporary server goes")
    args = p.parse_args()
    from snapkeep.sandbox import PrivateMariaDB

    copies = [f"{m}{r}" for r in range(args.rounds) for m in ("stock", "fast")]
    with tempfile.TemporaryDirectory(dir=args.scratch) as base:
        server = PrivateMariaDB(Path(base) / "server", OPTIONS).start()
        try:
            conn = server.connect()
            for db in ("src", *copies):
                _run(conn, f"CREATE DATABASE {db}", f"USE {db}", "SET TIMESTAMP = 1700000000",
                     *SCHEMA, "SET TIMESTAMP = DEFAULT")
            _run(conn, "USE src", PROCEDURE, "FLUSH LOGS")
            (file, position, *_), = _run(conn, "SHOW MASTER STATUS")
            # the workload is written fast; the replays run under the chosen durability
            _run(conn, "SET GLOBAL innodb_flush_log_at_trx_commit = 2")
            t0 = time.perf_counter()
            _run(conn, f"CALL gen({args.transactions})")
            written = time.perf_counter() - t0
            _run(conn, f"SET GLOBAL innodb_flush_log_at_trx_commit = {args.flush_at_commit}",
                 "FLUSH LOGS")
            logs = _run(conn, "SHOW BINARY LOGS")
            names = [str(r[0]) for r in logs]
            files = names[names.index(file):]
            size = sum(int(r[1]) for r in logs if str(r[0]) in files)
            expected = [r[1] for r in _checksums(conn, "src")]
            results: dict[str, list[tuple[float, float]]] = {"stock": [], "fast": []}
            for r in range(args.rounds):
                for method in ("stock", "fast") if r % 2 == 0 else ("fast", "stock"):
                    dst = f"{method}{r}"
                    if method == "stock":
                        results[method].append(run_stock(server, files, position, dst))
                    else:
                        results[method].append(
                            run_snapkeep(server, files, position, dst, args.threads))
                    got = [row[1] for row in _checksums(conn, dst)]
                    if got != expected:
                        raise SystemExit(f"{dst} differs from src after its replay")
            conn.close()
        finally:
            server.stop()
    load = os.getloadavg()
    print(f"# {args.transactions} transactions ({written:.0f} s to write), binlog "
          f"{size / 2**20:.0f} MiB in {len(files)} files; innodb_flush_log_at_trx_commit="
          f"{args.flush_at_commit}; rounds {args.rounds}; load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}")
    print(f"# {shlex.join([sys.executable, *sys.argv])}")
    print("| method | wall s, median (min–max) | client CPU s, median (min–max) |")
    print("|---|---|---|")
    labels = {"stock": "`mariadb-binlog … | mariadb`", "fast": "snapkeep `replay()`"}
    for method, rows in results.items():
        wall = [w for w, _ in rows]
        cpu = [c for _, c in rows]
        print(f"| {labels[method]} | {statistics.median(wall):.1f} ({min(wall):.1f}–"
              f"{max(wall):.1f}) | {statistics.median(cpu):.1f} ({min(cpu):.1f}–"
              f"{max(cpu):.1f}) |")
    ratio = statistics.median(w for w, _ in results["stock"]) / statistics.median(
        w for w, _ in results["fast"])
    print(f"ratio (stock wall / snapkeep wall, medians): {ratio:.2f}x")


if __name__ == "__main__":
    main()
