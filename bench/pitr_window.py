"""What the recoverable window costs (docs/pitr.md, The recoverable window): a local
repository with ``--records`` archived segments (a day at 2 s per segment is ~43 000) and
``--snapshots`` snapshots recording positions in them; ``pitr_window.window`` timed cold
(a fresh process's first call: every record and manifest read once) and warm (what
``environment:info``, ``GET /metrics`` and each console page then pay), without asking a
server (``server=False``: one ``SHOW BINARY LOGS`` more in real use). CPU seconds of this
process (user + sys), which the shared machine's load moves less than wall time.

    .venv/bin/python bench/pitr_window.py --records 5000 --snapshots 48
"""

from __future__ import annotations

import argparse
import resource
import struct
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from snapkeep.config import load_config  # noqa: E402
from snapkeep.repository import BinlogArchive, SnapshotManifest  # noqa: E402
from snapkeep.services import pitr_window  # noqa: E402
from snapkeep.services.context import Context  # noqa: E402

T0 = datetime(2026, 12, 5, tzinfo=UTC)
EVENTS = 50  # per segment, 100 bytes each


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def build(base: Path, records: int, snapshots: int) -> Context:
    (base / "snapkeep.toml").write_text(
        '[project]\nid = "bench"\nrepository = "repo"\n\n[repository]\n'
        'key_file = "repository.key"\n\n[environments.production]\ntype = "production"\n'
        'root = "."\ndatabase = "mysql://root@127.0.0.1:1/shop"\npoint_in_time = true\n')
    ctx = Context(load_config(str(base / "snapkeep.toml")))
    ctx.init_repository()
    archive = BinlogArchive(ctx.repository, "production")
    every = max(1, records // max(1, snapshots))
    pos = 4
    for i in range(records):
        t = T0 + timedelta(seconds=2 * i)
        data = b"".join(struct.pack("<IBIIIH", int(t.timestamp()), 2, 1, 100,
                                    pos + 100 * (k + 1), 0) + b"x" * 81 for k in range(EVENTS))
        w = archive.begin_segment()
        w.write(data)
        w.commit({"file": "mysql-bin.000001", "start": pos, "end": pos + len(data),
                  "events": EVENTS, "first_time": pitr_window.iso(t),
                  "last_time": pitr_window.iso(t)})
        if i % every == every // 2:  # a snapshot in the middle of this segment
            s = ctx.repository.begin_snapshot()
            s.commit(SnapshotManifest(
                id=f"s{i:08d}", project="bench", environment="production",
                environment_type="production", created_at=t.isoformat(), expires_at=None,
                live=True, automated=True, commit_id=None,
                services={"database": {"kind": "mysql", "binlog": {
                    "file": "mysql-bin.000001", "position": pos + 100 * (EVENTS // 2),
                    "gtid": None, "method": "binlog_snapshot"}}}))
            s.close()
        pos += len(data)
    return ctx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--snapshots", type=int, default=48)
    ap.add_argument("--warm", type=int, default=5, help="warm calls timed")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t = time.monotonic()
        build(Path(d), args.records, args.snapshots)
        print(f"built {args.records} records, {args.snapshots} snapshots in "
              f"{time.monotonic() - t:.1f} s")
        ctx = Context(load_config(str(Path(d) / "snapkeep.toml")))  # a fresh opener
        env = ctx.config.environments["production"]
        c, t = cpu(), time.monotonic()
        w = pitr_window.window(ctx, env, server=False)
        print(f"cold: {cpu() - c:.3f} CPU s, {time.monotonic() - t:.3f} s wall; "
              f"{len(w.bases)} bases; {w.describe()}")
        cpus, walls = [], []
        for _ in range(args.warm):
            c, t = cpu(), time.monotonic()
            pitr_window.window(ctx, env, server=False)
            cpus.append(cpu() - c)
            walls.append(time.monotonic() - t)
        cpus.sort()
        walls.sort()
        print(f"warm (median of {args.warm}): {cpus[len(cpus) // 2]:.3f} CPU s, "
              f"{walls[len(walls) // 2]:.3f} s wall")


if __name__ == "__main__":
    main()
