"""One consistent point for a physical snapshot's pages and its logical part.

``mariadb-backup --backup`` makes its copy consistent at its ``BACKUP STAGE
BLOCK_COMMIT``: while it holds that stage nothing commits on the server (and from its
``BACKUP STAGE FLUSH`` on, nothing writes to a non-transactional table), and it reads the
InnoDB LSN and the binlog position there. ``Backup`` runs it in the background and stops
it (SIGSTOP; its stages stay held) when it holds ``BLOCK_COMMIT``, while the logical
dump's connections start their ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` and read
the small non-transactional tables; then it goes on (SIGCONT). The pages, the logical
dump's rows (InnoDB tables not paged, MyISAM/Aria under ``NONTX_UNDER_LOCK_BYTES``) and
its binlog position are then of one point, live snapshot or not: no commit can fall
between them. Its binlog position (``xtrabackup_binlog_info``,
``mariadb_backup_binlog_info`` in newer releases) is read back as a check: it must equal
the logical dump's.

A stopped mariadb-backup holds every commit of the server, so it must never outlive us
stopped: it is started with ``PR_SET_PDEATHSIG`` = SIGKILL (killed with its parent; the
server then drops its connections and the stage), continued in every path out of
``hold``, and killed (after a SIGCONT) by ``close`` when the snapshot fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from snapkeep.errors import ServiceUnavailable

# where mariadb-backup is stopped: commits blocked. (A stop after BLOCK_DDL, to read the
# DDL there, deadlocked: an ALTER waiting for BLOCK_DDL holds the table's metadata lock
# the DDL reader then waits for.)
COMMITS_BLOCKED = "Acquired locks for BACKUP STAGE BLOCK_COMMIT"
STOPS = (COMMITS_BLOCKED,)
BINLOG_INFO = ("mariadb_backup_binlog_info", "xtrabackup_binlog_info")
_PR_SET_PDEATHSIG = 1


try:  # resolved here: the child only calls it (no loading between fork and exec)
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: no parent-death signal
    _prctl = None


def _die_with_parent() -> None:  # in the child, before exec
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


class Backup:
    """``mariadb-backup --backup`` running, stopped at each of ``STOPS`` until told to go
    on (``go_on``, or leaving ``hold``)."""

    def __init__(self, argv: list[str], what: str, describe: str,
                 on_line: Callable[[str], None] | None = None) -> None:
        self.what, self.describe = what, describe
        # each line of its output, as read (best effort: dropped should it raise)
        self._on_line = on_line
        self._tail: deque[str] = deque(maxlen=3)
        self._reached = {line: threading.Event() for line in STOPS}
        self._stopped_at: str | None = None  # the stop it is stopped at
        self._lock = threading.Lock()
        # started by the thread that waits for it (PDEATHSIG follows the creating thread)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, errors="replace",
                                     preexec_fn=_die_with_parent)
        self._reader = threading.Thread(target=self._read, name="snapkeep-mariadb-backup",
                                        daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        try:
            for line in self.proc.stderr:
                if line.strip():
                    self._tail.append(line.strip())
                if self._on_line is not None:
                    try:
                        self._on_line(line)
                    except Exception:  # noqa: BLE001 - a watcher must not stop the stops
                        self._on_line = None
                for stop, reached in self._reached.items():
                    if not reached.is_set() and stop in line:
                        with self._lock:
                            if self.proc.poll() is None:
                                os.kill(self.proc.pid, signal.SIGSTOP)
                                self._stopped_at = stop
                        reached.set()
        finally:
            for reached in self._reached.values():  # ended: the waiters see the exit
                reached.set()

    def go_on(self, stop: str | None = None) -> None:
        """Let mariadb-backup go on from ``stop`` (None: from wherever it is stopped). It
        may already be stopped at a later one, its line read meanwhile: it stays there."""
        with self._lock:
            if self._stopped_at is not None and stop in (None, self._stopped_at):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGCONT)
                self._stopped_at = None

    def wait(self, stop: str) -> None:
        """Wait until mariadb-backup is stopped at ``stop`` (one of ``STOPS``) or a later
        one (it holds that stop's stage either way); ServiceUnavailable when it ended
        before."""
        self._reached[stop].wait()
        with self._lock:
            at = self._stopped_at
        if at is None or STOPS.index(at) < STOPS.index(stop):
            self._reader.join()
            self.proc.wait()
            raise self._failure(stop)

    @contextlib.contextmanager
    def hold(self, stop: str) -> Iterator[None]:
        """``wait(stop)``, then keep it stopped there for the block."""
        try:
            self.wait(stop)
            yield
        finally:
            self.go_on()

    def finish(self) -> None:
        """Wait for the backup's end; ServiceUnavailable when it failed."""
        self.go_on()
        self._reader.join()
        if self.proc.wait() != 0:
            raise self._failure(None)

    def close(self) -> None:
        """Kill it if it still runs (the snapshot failed); its stage goes with it."""
        with self._lock:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                    os.kill(self.proc.pid, signal.SIGCONT)
            self._stopped_at = None
        self.proc.wait()
        self._reader.join(timeout=10)

    def _failure(self, stop: str | None) -> ServiceUnavailable:
        rc = self.proc.returncode
        if rc == 0:
            return ServiceUnavailable(
                f"{self.what} of {self.describe} ended without the line {stop!r}"
                " this snapkeep waits for (another mariadb-backup release?); set "
                "engine = \"logical\" and report it")
        return ServiceUnavailable(f"{self.what} of {self.describe} failed (exit {rc}): "
                                  f"{' | '.join(self._tail)}")


def binlog_info(backup: Path) -> dict[str, Any] | None:
    """The binlog position mariadb-backup recorded at its BLOCK_COMMIT point (None: the
    server writes no binlog)."""
    for name in BINLOG_INFO:
        path = backup / name
        if path.is_file():
            fields = path.read_text().strip().split("\t")
            if len(fields) >= 2 and fields[1].strip().isdigit():
                return {"file": fields[0].strip(), "position": int(fields[1]),
                        "gtid": fields[2].strip() if len(fields) > 2 else ""}
    return None


def copied(db_dir: Path, file: str) -> bool:
    """Whether mariadb-backup's copy, at its BLOCK_COMMIT point, holds ``file``'s
    tablespace (a ``.new`` is a re-copy its prepare renames; a ``.del`` a delete it
    applies)."""
    return ((db_dir / f"{file}.ibd").is_file() or (db_dir / f"{file}.new").is_file()) \
        and not (db_dir / f"{file}.del").exists()
