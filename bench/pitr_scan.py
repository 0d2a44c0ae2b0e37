"""What the point-in-time restore's guard scan costs on top of any replayer
(``engines/mysql/binlog_scan.scan``, docs/pitr.md "Restore to a point in time").

A private MariaDB with the binary log on gets ``--transactions`` small transactions
(a 3-row INSERT, an UPDATE and a DELETE in turn, so Table_map, row and XID events), then
its binlog file is scanned as one piece (from offset 4, as a restore reads it), ``--rounds``
times; CPU seconds (user + sys of this process) per 100 MiB and per 100 000 transactions.

    .venv/bin/python bench/pitr_scan.py --transactions 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from snapkeep.engines.mysql.binlog_replay_types import ReplayPiece, ReplayStop
from snapkeep.engines.mysql.binlog_scan import scan
from snapkeep.sandbox import PrivateMariaDB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--transactions", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pitr-scan-") as tmp:
        server = PrivateMariaDB(Path(tmp) / "server", ("--log-bin=mysql-bin",
                                                       "--binlog-format=ROW",
                                                       "--server-id=1")).start()
        try:
            conn = server.connect()
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE shop")
                conn.select_db("shop")  # a DDL naming its database is refused by the scan
                cur.execute("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, "
                            "v INT, s VARCHAR(40))")
                for i in range(args.transactions):
                    kind = i % 3
                    if kind == 0:
                        cur.execute("INSERT INTO shop.t (v, s) VALUES (%s, 'a'), (%s, 'b'), "
                                    "(%s, 'c')", (i, i, i))
                    elif kind == 1:
                        cur.execute("UPDATE shop.t SET v = v + 1 WHERE id = %s", (i,))
                    else:
                        cur.execute("DELETE FROM shop.t WHERE id = %s", (i // 2,))
                    conn.commit()
                cur.execute("SHOW MASTER STATUS")
                file, end = cur.fetchone()[:2]
            data = (server.datadir / file).read_bytes()[4:int(end)]
        finally:
            server.stop()
    piece = ReplayPiece(file, 4, 4 + len(data), lambda: (data,))
    stop = ReplayStop(before_time=datetime.now(UTC) + timedelta(days=1))
    cpu = []
    for _ in range(args.rounds):
        t0 = time.process_time()
        result = scan([piece], start_file=file, start_position=4, source_db="shop", stop=stop)
        cpu.append(time.process_time() - t0)
    mib = len(data) / 2**20
    med = statistics.median(cpu)
    print(f"{result.transactions} transactions, {result.events} events, {mib:.1f} MiB; "
          f"scan CPU median {med:.3f} s (min {min(cpu):.3f}, max {max(cpu):.3f}): "
          f"{med / mib * 100:.2f} s per 100 MiB, "
          f"{med / max(1, result.transactions) * 100_000:.2f} s per 100 000 transactions")


if __name__ == "__main__":
    main()
