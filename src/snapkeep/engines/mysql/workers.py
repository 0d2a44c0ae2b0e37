"""Worker connections that stream table parts into the repository, one part at a time each.

Each worker owns one ``connect_stream`` connection (in its own consistent-snapshot
transaction, see ``dump.py``) and one thread. It takes a ``Part`` from the shared queue,
runs the part's SELECT unbuffered, encodes its rows block by block (in C by the row pump
where it is built, see ``StreamReader.pump``; else in Python per fetched batch) and writes
each block straight into the part's own ``BlobWriter``: no temporary file, and memory per
worker is one block plus the chunker's window, whatever the table sizes.

The first error stops the pool: the other workers stop at their next batch, every
connection is closed by ``close()``, and the error is raised by ``join()``.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from snapkeep.engines.mysql.connect import StreamReader
from snapkeep.engines.mysql.digest import LineDigest, Sum
from snapkeep.engines.mysql.encoding import ESCAPED, QUOTED, encode_rows, join_lines
from snapkeep.progress import Reporter
from snapkeep.repository import BlobRef, BlobWriter

FETCH_ROWS = 2000
PUMP_BLOCK = 1 << 20  # bytes of lines per block from the C row pump
READ_AHEAD = 2  # blocks a worker's reading thread may be ahead of its store


@dataclass
class Part:
    """One range of one table; filled in by the worker that dumps it."""

    table: str
    index: int
    sql: str
    estimate: int  # bytes expected, for progress
    encoding: str = ESCAPED  # of the lines ``sql`` returns (see encoding.py)
    fallback_sql: str | None = None  # the escaped-encoding SELECT, when a line is too long
    ref: BlobRef | None = None
    rows: int = 0
    digest: Sum | None = None  # of the lines stored (digest.py), in ``encoding``
    done: threading.Event = field(default_factory=threading.Event)


class _Stopped(Exception):
    pass


class SafeReporter:
    """Serialises calls to a reporter shared by several threads.

    Progress never makes a worker wait: ``advance`` adds its units to a sum, and the thread
    that finds the inner reporter free hands it the sum (an activity's reporter writes
    to the catalog, a database commit; workers queueing behind it stalled their streams).
    ``flush`` hands over what is left, waiting for the reporter if it must.
    """

    def __init__(self, inner: Reporter) -> None:
        self._inner = inner
        self._lock = threading.Lock()  # held while the inner reporter is called
        self._sum_lock = threading.Lock()
        self._units = 0  # advanced, not yet handed to the inner reporter

    def log(self, message: str) -> None:
        with self._lock:
            self._inner.log(message)

    def add_total(self, units: int) -> None:
        with self._lock:
            self._inner.add_total(units)

    def advance(self, units: int) -> None:
        if units > 0:
            with self._sum_lock:
                self._units += units
            self._hand_over(wait=False)

    def flush(self) -> None:
        self._hand_over(wait=True)

    def _hand_over(self, *, wait: bool) -> None:
        if not self._lock.acquire(blocking=wait):
            return  # the thread calling the reporter hands these units over after its own
        try:
            while True:
                with self._sum_lock:
                    units, self._units = self._units, 0
                if not units:
                    return
                self._inner.advance(units)
        finally:
            self._lock.release()


class WorkerPool:
    """N connections dumping parts from one queue; ``submit`` parts, then ``join``."""

    def __init__(self, readers: list[StreamReader], blob_writer: Callable[[], BlobWriter],
                 reporter: SafeReporter) -> None:
        self.readers = readers
        self._blob_writer = blob_writer
        self._reporter = reporter
        self._queue: queue.Queue[Part | None] = queue.Queue()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    # -- running parts on the calling thread (before the workers start) -------------------

    def run_now(self, parts: list[Part]) -> None:
        """Dump ``parts`` spread over the workers' connections in parallel, and wait."""
        chunks: list[list[Part]] = [parts[i::len(self.readers)] for i in range(len(self.readers))]
        threads = [threading.Thread(target=self._run_list, args=(r, c), daemon=True,
                                    name=f"snapkeep-dump-{i}")
                   for i, (r, c) in enumerate(zip(self.readers, chunks, strict=True)) if c]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self._raise_first()

    def _run_list(self, reader: StreamReader, parts: list[Part]) -> None:
        try:
            for part in parts:
                self._dump(reader, part)
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            self._fail(e)

    # -- the queue ---------------------------------------------------------------------------

    def start(self) -> None:
        for i, reader in enumerate(self.readers):
            t = threading.Thread(target=self._loop, args=(reader,), daemon=True,
                                 name=f"snapkeep-dump-{i}")
            t.start()
            self._threads.append(t)

    def submit(self, part: Part) -> None:
        self._raise_first()
        self._queue.put(part)

    def stop(self) -> None:
        """Make the workers stop at their next batch (after an error elsewhere)."""
        self._stop.set()

    def join(self) -> None:
        """Wait for every submitted part; raise the first worker error."""
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()
        self._threads.clear()
        self._raise_first()

    @property
    def failed(self) -> bool:
        return bool(self._errors)

    def _loop(self, reader: StreamReader) -> None:
        while True:
            part = self._queue.get()
            if part is None:
                return
            if self._stop.is_set():
                continue
            try:
                self._dump(reader, part)
            except BaseException as e:  # noqa: BLE001 - handed to the calling thread
                self._fail(e)

    def _fail(self, e: BaseException) -> None:
        if not isinstance(e, _Stopped):
            self._errors.append(e)
        self._stop.set()

    def _raise_first(self) -> None:
        if self._errors:
            raise self._errors[0]

    # -- one part ------------------------------------------------------------------------------

    def _dump(self, reader: StreamReader, part: Part) -> None:
        ref, rows, digest = self._stream(reader, part, part.sql, part.encoding)
        if ref is None:  # a quoted line exceeded max_allowed_packet
            assert part.fallback_sql is not None
            self._reporter.log(f"table {part.table} part {part.index}: a row is longer than "
                               "the server's max_allowed_packet as one line; reading that "
                               "part field by field")
            part.encoding = ESCAPED
            ref, rows, digest = self._stream(reader, part, part.fallback_sql, ESCAPED)
        assert ref is not None
        part.ref, part.rows, part.digest = ref, rows, digest
        part.done.set()

    def _stream(self, reader: StreamReader, part: Part, sql: str, encoding: str
                ) -> tuple[BlobRef | None, int, Sum]:
        """Stream ``sql``'s rows into a new blob and digest its lines; (None, 0, _) if a
        quoted line came back NULL (the rest of the result is read and dropped, the blob
        abandoned)."""
        writer = self._blob_writer()
        digest = LineDigest(encoding)
        rows = 0
        advanced = 0
        overflow = False
        for data, count in _read_ahead(_blocks(reader, sql, encoding, digest)):
            if self._stop.is_set():
                raise _Stopped
            if overflow:
                continue
            if data is None:
                overflow = True
                continue
            writer.write(data)
            rows += count
            step = min(len(data), max(part.estimate - advanced, 0))
            self._reporter.advance(step)
            advanced += step
        if overflow:
            return None, 0, Sum()
        self._reporter.advance(part.estimate - advanced)
        return writer.close(), rows, digest.sum()

    def close(self) -> None:
        """Stop and close every connection (also those of workers that failed)."""
        self._stop.set()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()
        self._threads.clear()
        for reader in self.readers:
            reader.close()


def _blocks(reader: StreamReader, sql: str, encoding: str, digest: LineDigest
            ) -> Iterator[tuple[bytes | memoryview | None, int]]:
    """Encoded blocks of ``sql``'s rows with their row counts, each line added to
    ``digest``; ``(None, n)`` for a quoted batch holding a NULL line. Escaped lines come
    from the C row pump where it runs (which digests them as it encodes them)."""
    if encoding == ESCAPED and reader.pumps:  # then digest.impl is the C LineDigest
        yield from reader.pump(sql, PUMP_BLOCK, digest.impl)
        return
    for batch in reader.stream(sql, FETCH_ROWS):
        data = join_lines(batch) if encoding == QUOTED else encode_rows(batch)
        if data:
            digest.update(data)
        yield data, len(batch)


_END = object()


def _read_ahead(blocks: Iterator[tuple[bytes | memoryview | None, int]], depth: int = READ_AHEAD
                ) -> Iterator[tuple[bytes | memoryview | None, int]]:
    """``blocks``, read on a thread of their own up to ``depth`` blocks ahead.

    The reading thread waits for the server and encodes (in C, without the GIL) while this
    one chunks, hashes, compresses and stores the blocks before: the server keeps sending
    instead of waiting for the store. The iterator is used, and closed, by the reading
    thread only (a row stream is bound to one thread at a time); stopping early closes it
    (``StreamReader.pump`` then reads and drops the rest of the result)."""
    q: queue.Queue[Any] = queue.Queue(depth)
    cancelled = threading.Event()
    failure: list[BaseException] = []

    def read() -> None:
        try:
            for item in blocks:
                while not cancelled.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if cancelled.is_set():
                    return
        except BaseException as e:  # noqa: BLE001 - raised by the consuming thread
            failure.append(e)
        finally:
            close = getattr(blocks, "close", None)
            if close is not None:
                close()
            if not cancelled.is_set():
                q.put(_END)

    thread = threading.Thread(target=read, daemon=True,
                              name=f"{threading.current_thread().name}-read")
    thread.start()
    try:
        while (item := q.get()) is not _END:
            yield item
        if failure:
            raise failure[0]
    finally:
        cancelled.set()
        while thread.is_alive():  # unblock a put, then wait for the stream to close
            with contextlib.suppress(queue.Empty):
                q.get_nowait()
            thread.join(0.05)
