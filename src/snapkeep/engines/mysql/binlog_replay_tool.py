"""The baseline replayer: the stock ``mariadb-binlog`` piped into ``mariadb``.

The archived pieces are written back into binlog files (the 4-byte magic, then the file's
bytes from offset 4: the first piece of the start file must start there, so that
``mariadb-binlog`` reads the file's Format_description event), ``binlog_scan.scan`` finds
the exact stop position, and::

    mariadb-binlog --database=SRC --rewrite-db='SRC->SHADOW' --disable-log-bin \\
        --start-position=P --stop-position=S FILES… | mariadb --binary-mode

applies the database's events to the shadow. ``--disable-log-bin`` keeps the replayed
events out of the server's own binlog: replaying them with their original GTIDs
(``SET gtid_seq_no``) would write GTIDs out of order; it needs SUPER (or BINLOG ADMIN).
``tables`` is not filtered here (``mariadb-binlog --table`` takes one table and leaves
DDL through): the restore replays the whole database and keeps the tables asked for
(``pitr.py``). The fast replayer (``binlog_replay.py``) has the same signature.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from snapkeep.engines.mysql.binlog_replay_types import ReplayPiece, ReplayResult, ReplayStop
from snapkeep.engines.mysql.binlog_scan import scan
from snapkeep.engines.mysql.sqlfile import find_client, option_file
from snapkeep.engines.mysql.target import MySQLTarget
from snapkeep.errors import ConfigError, ServiceUnavailable
from snapkeep.progress import Reporter

MAGIC = b"\xfebin"


def find_binlog_tool() -> str:
    for name in ("mariadb-binlog", "mysqlbinlog"):
        path = shutil.which(name)
        if path:
            return path
    raise ConfigError("replaying the binary log needs the stock `mariadb-binlog` (or "
                      "`mysqlbinlog`), which is not on PATH: install the MariaDB client "
                      "(Debian: `apt-get install mariadb-client`)")


def write_files(pieces: Iterable[ReplayPiece], directory: Path, *, start_file: str,
                last_file: str) -> list[Path]:
    """The binlog files ``start_file`` .. ``last_file`` rebuilt from the pieces."""
    paths: list[Path] = []
    out = None
    expected = 0
    try:
        for piece in pieces:
            if not paths and piece.file != start_file:
                continue
            if not paths or paths[-1].name != piece.file:
                if paths and paths[-1].name == last_file:
                    break
                if piece.start != 4:
                    raise ServiceUnavailable(
                        f"the archive of binlog {piece.file} starts at offset {piece.start}, "
                        f"not at its beginning: it cannot be replayed from there")
                if out is not None:
                    out.close()
                path = directory / piece.file
                paths.append(path)
                out = open(path, "wb")  # noqa: SIM115 - closed when the file changes
                out.write(MAGIC)
                expected = 4
            if piece.start != expected:
                raise ServiceUnavailable(f"the archive of binlog {piece.file} has a hole at "
                                         f"{expected}: run `snapkeep repository:check`")
            assert out is not None
            for data in piece.read():
                out.write(data)
            expected = piece.end
    finally:
        if out is not None:
            out.close()
    return paths


def replay(target: MySQLTarget, pieces: Iterable[ReplayPiece], *, start_file: str,
           start_position: int, source_db: str, into_db: str,
           tables: set[str] | None, stop: ReplayStop, reporter: Reporter,
           threads: int = 1) -> ReplayResult:
    """Apply ``source_db``'s archived events from ``start_file:start_position`` up to
    ``stop`` to ``into_db`` with the stock tools (see the module). ``tables`` and
    ``threads`` are not used by this baseline. When the archive ends before the stop,
    everything archived is applied and ``reached_stop`` is false."""
    del tables, threads
    pieces = list(pieces)
    plan = scan(pieces, start_file=start_file, start_position=start_position,
                source_db=source_db, stop=stop)
    result = ReplayResult(plan.transactions, plan.events, plan.last_time, plan.last_gtid,
                          plan.reached_stop)
    # not reached: everything archived (its last complete transaction), for the caller
    # to refuse or to accept when the archive is known to be complete
    stop_file, stop_position = (plan.stop_file, plan.stop_position) if plan.reached_stop \
        else (plan.end_file, plan.end_position)
    if plan.transactions == 0 or stop_file is None or stop_position is None:
        return result
    tool, client = find_binlog_tool(), find_client()
    workdir = Path(tempfile.mkdtemp(prefix="snapkeep-replay-"))
    try:
        files = write_files(pieces, workdir, start_file=start_file, last_file=stop_file)
        login = option_file(workdir, target)
        dump = subprocess.Popen(
            [tool, "--no-defaults", f"--database={source_db}",
             f"--rewrite-db={source_db}->{into_db}", "--disable-log-bin",
             f"--start-position={start_position}", f"--stop-position={stop_position}",
             *map(str, files)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert dump.stdout is not None
        apply = subprocess.run(
            [client, f"--defaults-file={login}", "--binary-mode", into_db],
            stdin=dump.stdout, capture_output=True)
        dump.stdout.close()
        _, dump_err = dump.communicate()
        if dump.returncode != 0:
            raise ServiceUnavailable(f"mariadb-binlog failed replaying into {into_db}: "
                                     f"{dump_err.decode(errors='replace').strip()[:300]}")
        if apply.returncode != 0:
            raise ServiceUnavailable(
                f"replaying the binlog into {into_db} failed: "
                f"{apply.stderr.decode(errors='replace').strip()[:300]}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    reporter.log(f"replayed {plan.transactions} transactions ({plan.events} events) of "
                 f"{source_db} into {into_db} with mariadb-binlog")
    return result
