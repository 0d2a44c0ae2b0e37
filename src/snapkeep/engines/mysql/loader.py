"""Feeding ``LOAD DATA LOCAL INFILE`` from the repository through a named pipe.

The client library opens the file named in the statement; that name is a FIFO which a
thread fills straight from the blob (each chunk hash-checked on read), so nothing is
copied to disk. If the feeder fails (damaged repository), the pipe closes early, the
server sees a short file, and ``load_rows`` raises the feeder's error: the partial
table lives only in the shadow database, which the caller then drops.

The feeder also digests the lines it feeds (``digest.py``, in C with the GIL released),
and ``load_rows`` returns them with what the server says it did with them (records,
skipped, warnings), for the shadow load's check against the recorded digest.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pymysql.converters import escape_string

from snapkeep.engines.mysql.connect import Connection, query, quote_ident
from snapkeep.engines.mysql.digest import LineDigest, Sum
from snapkeep.engines.mysql.encoding import ESCAPED, LOAD_FORMATS, Column, load_clause
from snapkeep.engines.seams import BlobSource
from snapkeep.progress import Reporter
from snapkeep.repository import BlobRef


class Stopped(Exception):
    """A parallel load was stopped because another stream failed."""


_INFO = re.compile(rb"Records:\s*(\d+)\s+Deleted:\s*(\d+)\s+Skipped:\s*(\d+)")


@dataclass
class Loaded:
    """One stream loaded: the rows the server took, what it said, and the lines fed."""

    rows: int = 0
    encoding: str = ESCAPED  # of the lines fed
    deleted: int = 0
    skipped: int = 0
    warnings: list[tuple[str, int, str]] = field(default_factory=list)  # level, code, text
    warning_count: int = 0  # the server keeps the first max_error_count (64) in ``warnings``
    fed: Sum = field(default_factory=Sum)
    pending: int = 0  # bytes after the last LF: a line the server took but was not counted


@dataclass
class _Feeder:
    """Writes a blob's chunks into the FIFO that the server's ``LOAD DATA`` reads, on its
    own thread; every chunk also goes into ``digest``. A failure is kept in ``error``
    for the loading thread to raise."""

    path: Path
    chunks: Iterator[bytes]
    reporter: Reporter
    stop: threading.Event | None
    digest: LineDigest | None = None
    cancelled: bool = False
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self.run, name=f"snapkeep-load-{self.path.name}",
                                       daemon=True)

    def run(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY)  # waits until the client opens the pipe
            with os.fdopen(fd, "wb", buffering=0) as pipe:
                for chunk in self.chunks:
                    if self.cancelled:
                        return
                    if self.stop is not None and self.stop.is_set():
                        self.error = Stopped("the load was stopped")
                        return
                    if self.digest is not None:
                        self.digest.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        n = pipe.write(view)
                        view = view[n:]
                    self.reporter.advance(len(chunk))
        except BrokenPipeError:
            if not self.cancelled:
                self.error = BrokenPipeError("the database client stopped reading the rows")
        except BaseException as e:  # noqa: BLE001 - handed to the loading thread
            self.error = e

    def cancel(self) -> None:
        """Stop feeding and unblock the thread wherever it waits (open or write)."""
        self.cancelled = True
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            while self.thread.is_alive():
                with contextlib.suppress(BlockingIOError):
                    os.read(fd, 1 << 16)
                self.thread.join(0.02)
        finally:
            os.close(fd)


def load_rows(conn: Connection, database: str, table: str, columns: list[Column],
              repo: BlobSource, ref: BlobRef, workdir: Path, reporter: Reporter,
              stop: threading.Event | None = None, *, encoding: str = ESCAPED) -> Loaded:
    """Load one stream of a table's rows; return what the server loaded and the digest of
    the lines it was fed (``Loaded``).

    Several streams may load into one table at once (each on its own connection and
    thread). Setting ``stop`` ends the stream early (the feeder closes the pipe at the
    next chunk) and makes this raise ``Stopped``.
    """
    if ref.size == 0 or not columns:
        return Loaded(encoding=encoding)
    fifo = workdir / f"rows-{threading.get_ident()}.fifo"
    os.mkfifo(fifo, 0o600)
    digest = LineDigest(encoding)
    feeder = _Feeder(fifo, repo.open_blob(ref).iter_chunks(), reporter, stop, digest)
    feeder.thread.start()
    sql = (f"LOAD DATA LOCAL INFILE '{escape_string(str(fifo))}' INTO TABLE "
           f"{quote_ident(database)}.{quote_ident(table)} {LOAD_FORMATS[encoding]} "
           f"{load_clause(columns)}")
    try:
        with conn.cursor() as cur:
            loaded = cur.execute(sql)
    except BaseException:
        feeder.cancel()
        raise
    finally:
        feeder.thread.join()
        fifo.unlink(missing_ok=True)
    if feeder.error is not None:
        raise feeder.error
    result = conn._result
    out = Loaded(rows=int(loaded), encoding=encoding, fed=digest.sum(), pending=digest.pending)
    info = _INFO.search(getattr(result, "message", None) or b"")
    if info:
        out.deleted, out.skipped = int(info.group(2)), int(info.group(3))
    out.warning_count = int(getattr(result, "warning_count", 0) or 0)
    if out.warning_count:
        out.warnings = [(str(_text(r[0])), int(r[1]), str(_text(r[2])))
                        for r in query(conn, "SHOW WARNINGS")]
    return out


def _text(value: object) -> object:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
