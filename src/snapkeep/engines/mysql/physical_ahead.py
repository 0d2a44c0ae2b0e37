"""A live physical snapshot's tablespaces stored ahead of mariadb-backup's prepare.

A live snapshot's pages are mariadb-backup's copy made consistent by ``--prepare``,
which applies the redo written during the copy; only then are they the snapshot's. But
storing them is the snapshot's largest cost (compression above all), and the copy and
the prepare leave the CPU half idle. So each ``.ibd`` is stored *ahead*, speculatively,
as soon as mariadb-backup says it has copied it (its ``Copying ./db/t.ibd to …`` line,
to ``t.ibd`` or, re-copied at the end, ``t.new``; then ``...done`` from the same copy
thread), while it copies the others, the logical
dump runs and prepare runs; prepare's end stops it (``stop``: a file being read is
closed where it is).

Nothing stored ahead is referenced by the snapshot. After prepare every ``.ibd`` is
stored again as before (``physical_dump._store``); the chunks of the pages prepare left
as they were — every page of a quiet database — are then found stored already, so that
pass hashes them and compresses nothing. The chunks of pages prepare changed are left in
the repository unreferenced until the next prune (``unreferenced`` says how much, for the
activity log). A failure here never fails the snapshot: the pass after prepare is the
one that counts, and meets any real fault again.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from snapkeep.engines.seams import PageSink
from snapkeep.faults import seam
from snapkeep.progress import Reporter
from snapkeep.repository import BlobRef

# "[01] 2026-12-06 20:42:37 Copying ./shop/t.ibd to /work/backup/shop/t.ibd" and later,
# from the same copy thread, "[01] 2026-12-06 20:42:38         ...done"
_LINE = re.compile(r"^\[(\d+)\] \S+ \S+\s+(?:Copying (.*)|\.\.\.done)\s*$")


class StoreAhead:
    """Stores the ``.ibd`` files of ``files`` (table name → file name) found copied into
    ``db_dir``, on ``threads`` threads, through ``sink``'s page writers; fed
    mariadb-backup's output lines (``line``)."""

    def __init__(self, sink: PageSink, db_dir: Path, files: dict[str, str], page_size: int,
                 level: int, threads: int, reporter: Reporter) -> None:
        self._sink, self._page_size, self._level = sink, page_size, level
        self._reporter = reporter
        # what the "Copying" line of each of our files ends with: its copy, or its re-copy
        # at the end (a tablespace created or rebuilt during the copy: prepare renames it)
        self._dests = {f" to {path}": path for file in files.values()
                       for path in (db_dir / f"{file}.ibd", db_dir / f"{file}.new")}
        self._copying: dict[str, Path | None] = {}  # copy thread → the file it copies
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="snapkeep-ahead")
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stored: dict[str, int] = {}  # chunk id → length, of the files stored ahead
        self.files = 0  # files stored whole
        self.failed: BaseException | None = None

    def line(self, text: str) -> None:
        """One line of mariadb-backup's output: a file copied whole is stored ahead."""
        m = _LINE.match(text.strip())
        if m is None or self._stopping.is_set():
            return
        thread, copying = m.group(1), m.group(2)
        if copying is not None:
            self._copying[thread] = next(
                (path for end, path in self._dests.items() if copying.endswith(end)), None)
            return
        path = self._copying.pop(thread, None)
        if path is not None:
            with self._lock:
                if not self._stopping.is_set():
                    self._pool.submit(self._store, path)

    def _store(self, path: Path) -> None:
        if self._stopping.is_set():
            return
        cut = False
        try:
            seam("mysql.physical.ahead")
            w = self._sink.page_writer(self._page_size, self._level)
            with open(path, "rb", buffering=0) as f:
                def read(room: memoryview) -> int:  # at stop: the file ends here
                    nonlocal cut
                    cut = self._stopping.is_set()
                    return 0 if cut else f.readinto(room) or 0

                while w.write_from(read):
                    pass
            ref = w.close()
        except FileNotFoundError:  # a re-copy prepare has renamed meanwhile: stored after
            return
        except Exception as e:  # noqa: BLE001 - the pass after prepare meets a real fault
            with self._lock:
                self.failed = self.failed or e
            return
        with self._lock:
            self._stored.update(ref.chunks)
            if not cut:
                self.files += 1

    def stop(self) -> None:
        """Stop storing ahead (prepare has ended, or the snapshot failed): files not begun
        are left, one being read ends where it is; returns once no thread stores."""
        with self._lock:
            self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def unreferenced(self, refs: list[BlobRef]) -> int:
        """Bytes of pages stored ahead that ``refs`` (the snapshot's) do not use: pages
        prepare changed, or a file cut off by ``stop`` (left for the next prune)."""
        used = {cid for ref in refs for cid, _n in ref.chunks}
        return sum(n for cid, n in self._stored.items() if cid not in used)

    def report(self, refs: list[BlobRef]) -> None:
        """The activity log's line on what storing ahead did."""
        if self.failed is not None:
            self._reporter.log(f"storing the copied tablespaces ahead of prepare stopped "
                               f"({type(self.failed).__name__}: {self.failed}); they are "
                               "stored after prepare instead")
        if not self._stored:  # nothing copied to store ahead (no paged table), or failed
            return
        left = self.unreferenced(refs)
        self._reporter.log(
            f"{self.files} tablespaces stored ahead of prepare; {left} bytes of their pages "
            "changed by prepare or cut off by its end (left unreferenced for the next prune)")
