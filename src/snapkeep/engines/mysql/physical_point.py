"""One consistent point for a physical snapshot's pages and its logical part.

``mariadb-backup --backup`` makes its copy consistent at its ``BACKUP STAGE
BLOCK_COMMIT``: while it holds that stage nothing commits on the server (and from its
``BACKUP STAGE FLUSH`` on, nothing writes to a non-transactional table), and it reads the
InnoDB LSN and the binlog position there. ``Backup`` runs it in the background and,
when it says it holds the stage (``Acquired locks for BACKUP STAGE BLOCK_COMMIT``), stops
it (SIGSTOP) so the stage stays held while the logical dump's connections start their
``START TRANSACTION WITH CONSISTENT SNAPSHOT`` and read the small non-transactional
tables; then it lets it go on (SIGCONT). The pages, the logical dump's rows (InnoDB
tables not paged, MyISAM/Aria under ``NONTX_UNDER_LOCK_BYTES``) and its binlog position
are then of one point, live snapshot or not: no commit can fall between them. Its binlog
position (``xtrabackup_binlog_info``, ``mariadb_backup_binlog_info`` in newer releases)
is read back as a check: it must equal the logical dump's.

A stopped mariadb-backup holds every commit of the server, so it must never outlive us
stopped: it is started with ``PR_SET_PDEATHSIG`` = SIGKILL (killed with its parent; the
server then drops its connections and the stage), continued in every path out of
``pause``, and killed (after a SIGCONT) by ``close`` when the snapshot fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from snapkeep.errors import ServiceUnavailable

BLOCK_COMMIT_HELD = "Acquired locks for BACKUP STAGE BLOCK_COMMIT"
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
    """``mariadb-backup --backup`` running, to be paused at its BLOCK_COMMIT point."""

    def __init__(self, argv: list[str], what: str, describe: str) -> None:
        self.what, self.describe = what, describe
        self._tail: deque[str] = deque(maxlen=3)
        self._held = threading.Event()
        self._stopped = False
        self._lock = threading.Lock()
        # started by the thread that waits for it (PDEATHSIG follows the creating thread)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True,
                                     preexec_fn=_die_with_parent)
        self._reader = threading.Thread(target=self._read, name="snapkeep-mariadb-backup",
                                        daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if line.strip():
                self._tail.append(line.strip())
            if not self._held.is_set() and BLOCK_COMMIT_HELD in line:
                with self._lock:
                    if self.proc.poll() is None:
                        os.kill(self.proc.pid, signal.SIGSTOP)
                        self._stopped = True
                self._held.set()
        self._held.set()  # ended without reaching it: the waiter sees the exit

    def _continue(self) -> None:
        with self._lock:
            if self._stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGCONT)
                self._stopped = False

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        """Wait until mariadb-backup holds BLOCK_COMMIT and keep it held for the block
        (nothing commits meanwhile); ServiceUnavailable when it ended before."""
        self._held.wait()
        try:
            if not self._stopped:
                self._reader.join()
                self.proc.wait()
                raise self._failure()
            yield
        finally:
            self._continue()

    def finish(self) -> None:
        """Wait for the backup's end; ServiceUnavailable when it failed."""
        self._continue()
        self._reader.join()
        if self.proc.wait() != 0:
            raise self._failure()

    def close(self) -> None:
        """Kill it if it still runs (the snapshot failed); its stage goes with it."""
        with self._lock:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                    os.kill(self.proc.pid, signal.SIGCONT)
            self._stopped = False
        self.proc.wait()
        self._reader.join(timeout=10)

    def _failure(self) -> ServiceUnavailable:
        rc = self.proc.returncode
        if rc == 0:
            return ServiceUnavailable(
                f"{self.what} of {self.describe} ended without the line {BLOCK_COMMIT_HELD!r}"
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
