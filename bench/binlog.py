"""Binlog archiving: which client, and what the follower costs (docs/pitr.md, Why this client).

Two measurements on a private MariaDB with the binary log on:

``--mode read`` (CPU per MiB and peak RSS): a binlog of ``--mib`` MiB is written first
(1 KiB rows, inserted then updated, so row events carry before and after images); then
each client reads it all from the start, ``--rounds`` times in alternating order, under
``/usr/bin/time``:

- ``direct``: ``engines/mysql/binlog_stream.BinlogStream`` (COM_BINLOG_DUMP over PyMySQL,
  headers only), nothing stored;
- ``follower``: the whole ``Follower``, archiving into a fresh local repository
  (chunking, zstd, encryption, packs, index, records);
- ``mariadb-binlog``: ``mariadb-binlog --read-from-remote-server --raw`` writing the files
  into a spool directory (what a spool-and-ingest follower would run, before its ingest);
- ``mysql-replication``: ``BinLogStreamReader`` iterating every event (its row events
  decoded), from ``--mysql-replication-python`` (a venv with ``mysql-replication``).

``--mode lag`` (recovery point): a second process commits ``--tps`` one-row transactions
per second for ``--seconds``, noting each commit's time and GTID; the follower archives
into a repository (``--interval``); a poller notes when each segment record first appears
(20 ms polls). Lag = record seen − commit, per transaction; printed p50/p99/max.

    .venv/bin/python bench/binlog.py --mode read --mib 256 --rounds 3 \\
        --mysql-replication-python /tmp/pitr-mr-venv/bin/python
    .venv/bin/python bench/binlog.py --mode lag --tps 300 --seconds 60
    .venv/bin/python bench/binlog.py --mode read --mib 1024 --rounds 1 --clients follower
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snapkeep.sandbox import PrivateMariaDB

# one file: every client reads the same bytes (mysql-replication's non-blocking mode stops
# at the first rotation)
OPTIONS = ("--log-bin=mysql-bin", "--binlog-format=ROW", "--server-id=1",
           "--max-binlog-size=1G")


def _status(server: PrivateMariaDB) -> tuple[str, int]:
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        f, p = cur.fetchone()[:2]
    conn.close()
    return str(f), int(p)


def fill(server: PrivateMariaDB, mib: int) -> None:
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS b")
        cur.execute("CREATE TABLE IF NOT EXISTS b.t (id INT AUTO_INCREMENT PRIMARY KEY, "
                    "v TEXT) ENGINE=InnoDB")
        cur.execute("USE b")
        while _size(server) < mib << 20:
            cur.execute("INSERT INTO b.t (v) SELECT REPEAT(MD5(RAND()), 32) "
                        "FROM seq_1_to_5000")
            cur.execute("UPDATE b.t SET v = REPEAT(MD5(RAND()), 32) WHERE id % 7 = 0 "
                        "ORDER BY id DESC LIMIT 5000")
    conn.close()


def _size(server: PrivateMariaDB) -> int:
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        total = sum(int(r[1]) for r in cur.fetchall())
    conn.close()
    return total


# -- the clients, each run as its own process ---------------------------------------------


def child_direct(port: int, until: str) -> None:
    from snapkeep.engines.mysql import MySQLTarget
    from snapkeep.engines.mysql.binlog_stream import BinlogStream, Event, binary_logs

    target = MySQLTarget("127.0.0.1", port, "root", None, "")
    end_file, end_pos = until.rsplit(":", 1)
    first = binary_logs(target)[0][0]
    stream = BinlogStream(target, first, 4, server_id=91001, heartbeat=1.0)
    n = size = 0
    for ev in stream.events():
        if isinstance(ev, Event):
            n += 1
            size += len(ev.data)
            if (ev.file, ev.end) == (end_file, int(end_pos)):
                break
    stream.close()
    print(json.dumps({"events": n, "bytes": size}))


def child_follower(port: int, until: str, repo_dir: str) -> None:
    from snapkeep.engines.mysql import Follower, MySQLTarget
    from snapkeep.progress import NullReporter
    from snapkeep.repository import BinlogArchive, Repository
    from snapkeep.storage import LocalBackend

    target = MySQLTarget("127.0.0.1", port, "root", None, "")
    repo = Repository.init(LocalBackend(Path(repo_dir)))
    archive = BinlogArchive(repo, "bench")
    end_file, end_pos = until.rsplit(":", 1)
    follower = Follower(target, archive, NullReporter(), server_id=91002, interval=2.0)

    def watch() -> None:
        while True:
            last = archive.last()
            if last is not None and (last.file, last.end) == (end_file, int(end_pos)):
                follower.stop.set()
                return
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()
    follower.run()
    print(json.dumps({"bytes": sum(r.data["end"] - r.data["start"]
                                   for r in archive.records() if r.kind == "segment")}))


def child_mysql_replication(port: int) -> None:
    from pymysqlreplication import BinLogStreamReader  # the scratch venv's

    stream = BinLogStreamReader(
        connection_settings={"host": "127.0.0.1", "port": port, "user": "root",
                             "passwd": ""}, server_id=91003, blocking=False, resume_stream=False)
    n = size = 0
    for ev in stream:
        n += 1
        size += ev.event_size
        if hasattr(ev, "rows"):
            _ = ev.rows  # decoded, as a consumer would
    stream.close()
    print(json.dumps({"events": n, "bytes": size}))


# -- measuring ------------------------------------------------------------------------------


def timed(cmd: list[str], spool: Path) -> tuple[float, int, int]:
    """(user+sys CPU seconds, peak RSS bytes, bytes read) of ``cmd``, from /usr/bin/time
    and what the client printed (or wrote into ``spool``)."""
    with tempfile.NamedTemporaryFile("r") as out:
        res = subprocess.run(["/usr/bin/time", "-f", "%U %S %e %M", "-o", out.name, *cmd],
                             check=True, stdout=subprocess.PIPE, text=True)
        u, s, _e, m = out.read().split()[-4:]
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    read = json.loads(lines[-1])["bytes"] if lines else sum(
        f.stat().st_size for f in spool.iterdir() if f.is_file())
    return float(u) + float(s), int(m) * 1024, read


def _settled(server: PrivateMariaDB) -> tuple[str, int]:
    """The binlog's end once it stops moving (MariaDB writes a Binlog_checkpoint event
    some time after a rotation)."""
    last = _status(server)
    while True:
        time.sleep(2)
        now = _status(server)
        if now == last:
            return now
        last = now


def read_mode(args: argparse.Namespace, server: PrivateMariaDB) -> None:
    fill(server, args.mib)
    file, pos = _settled(server)
    total = _size(server)
    files = []
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        files = [str(r[0]) for r in cur.fetchall()]
    conn.close()
    me = [sys.executable, __file__, "--port", str(server.port), "--until", f"{file}:{pos}"]
    clients: dict[str, list[str] | None] = {
        "direct": [*me, "--child", "direct"],
        "follower": [*me, "--child", "follower"],
        "mariadb-binlog": ["mariadb-binlog", "--no-defaults", "--read-from-remote-server",
                           "--raw", "-h", "127.0.0.1", "-P", str(server.port), "-u", "root",
                           "--result-file=SPOOL/", *files],
        "mysql-replication": ([args.mysql_replication_python, __file__, "--port",
                               str(server.port), "--child", "mysql-replication"]
                              if args.mysql_replication_python else None),
    }
    names = [n for n, c in clients.items() if c and (not args.clients or n in args.clients)]
    results: dict[str, list[tuple[float, int, int]]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else list(reversed(names)):
            with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
                cmd = [a.replace("SPOOL", tmp) for a in clients[name] or []]
                if name == "follower":
                    cmd += ["--repo", str(Path(tmp) / "repo")]
                results[name].append(timed(cmd, Path(tmp)))
    load = os.getloadavg()
    print(f"# binlog: {total / 2**20:.0f} MiB in {len(files)} files; rounds {args.rounds}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"# {shlex.join([sys.executable, *sys.argv])}")
    print("| client | MiB read | CPU s per 100 MiB, median (min–max) | "
          "peak RSS MiB, median (min–max) |")
    print("|---|---|---|---|")
    for name in names:
        cpu = [c / r * (100 << 20) for c, _m, r in results[name]]
        rss = [m / 2**20 for _c, m, _r in results[name]]
        read = min(r for _c, _m, r in results[name]) / 2**20
        print(f"| {name} | {read:.0f} | {statistics.median(cpu):.2f} ({min(cpu):.2f}–"
              f"{max(cpu):.2f}) | {statistics.median(rss):.0f} ({min(rss):.0f}–{max(rss):.0f}) |")


def lag_mode(args: argparse.Namespace, server: PrivateMariaDB) -> None:
    from snapkeep.engines.mysql import Follower, MySQLTarget
    from snapkeep.errors import NotFoundError
    from snapkeep.progress import NullReporter
    from snapkeep.repository import BinlogArchive, Repository
    from snapkeep.storage import LocalBackend

    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE b")
        cur.execute("CREATE TABLE b.t (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT)")
    conn.close()
    scratch = Path(tempfile.mkdtemp(dir=args.scratch))
    target = MySQLTarget("127.0.0.1", server.port, "root", None, "")
    follower_repo = Repository.init(LocalBackend(scratch / "repo"))
    follower = Follower(target, BinlogArchive(follower_repo, "bench"), NullReporter(),
                        server_id=91004, interval=args.interval)
    follower_proc = threading.Thread(target=follower.run, daemon=True)
    follower_proc.start()
    commits = scratch / "commits.jsonl"
    writer = subprocess.Popen([sys.executable, __file__, "--port", str(server.port),
                               "--child", "writer", "--tps", str(args.tps),
                               "--seconds", str(args.seconds), "--out", str(commits)])
    reader = BinlogArchive(Repository.open(LocalBackend(scratch / "repo")), "bench")
    seen: list[tuple[float, int, int]] = []  # (time seen, first seq, last seq)
    seq = 1
    while writer.poll() is None or time.time() < _last_commit(commits) + 10 * args.interval:
        try:
            r = reader.load(seq)
        except NotFoundError:
            time.sleep(0.02)
            continue
        now = time.time()
        seq += 1
        if r.data.get("gtid_first"):
            seen.append((now, int(r.data["gtid_first"].rsplit("-", 1)[1]),
                         int(r.data["gtid_last"].rsplit("-", 1)[1])))
    follower.stop.set()
    follower_proc.join()
    lags = []
    for line in commits.read_text().splitlines():
        t, gtid = json.loads(line)
        g = int(gtid.rsplit("-", 1)[1])
        hit = next((s for s, a, b in seen if a <= g <= b), None)
        if hit is not None:
            lags.append(hit - t)
    lags.sort()
    load = os.getloadavg()
    print(f"# {shlex.join([sys.executable, *sys.argv])}")
    print(f"# {len(lags)} transactions at {args.tps}/s for {args.seconds} s, interval "
          f"{args.interval} s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"commit → durable segment record: p50 {lags[len(lags) // 2]:.2f} s, "
          f"p99 {lags[int(len(lags) * 0.99)]:.2f} s, max {lags[-1]:.2f} s")


def _last_commit(path: Path) -> float:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return time.time()
    return json.loads(lines[-1])[0] if lines else time.time()


def child_writer(port: int, tps: int, seconds: float, out: str) -> None:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", password="",
                           autocommit=True)
    start = time.time()
    n = 0
    with open(out, "w") as f, conn.cursor() as cur:
        while time.time() - start < seconds:
            cur.execute("INSERT INTO b.t (v) VALUES (REPEAT('x', 200))")
            cur.execute("SELECT @@last_gtid")
            f.write(json.dumps([time.time(), cur.fetchone()[0]]) + "\n")
            f.flush()
            n += 1
            pause = start + n / tps - time.time()
            if pause > 0:
                time.sleep(pause)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=["read", "lag"], default="read")
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tps", type=int, default=300)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--interval", type=float, default=2.0)
    p.add_argument("--mysql-replication-python", default=None)
    p.add_argument("--clients", type=lambda v: v.split(","), default=None,
                   help="only these clients (comma-separated), e.g. follower")
    p.add_argument("--scratch", default=None, help="where temporary servers and spools go")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--until", default="", help=argparse.SUPPRESS)
    p.add_argument("--repo", default="", help=argparse.SUPPRESS)
    p.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child == "direct":
        return child_direct(args.port, args.until)
    if args.child == "follower":
        return child_follower(args.port, args.until, args.repo)
    if args.child == "mysql-replication":
        return child_mysql_replication(args.port)
    if args.child == "writer":
        return child_writer(args.port, args.tps, args.seconds, args.out)
    from snapkeep.sandbox import PrivateMariaDB

    with tempfile.TemporaryDirectory(dir=args.scratch) as base:
        server = PrivateMariaDB(Path(base) / "server", OPTIONS).start()
        try:
            (read_mode if args.mode == "read" else lag_mode)(args, server)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
