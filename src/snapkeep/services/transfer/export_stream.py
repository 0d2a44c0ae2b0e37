"""One part of an export, streamed to an HTTP client (the API's and the console's download).

``stream_export`` records an export activity and starts a writer thread that produces
the part (the engine's output, zstd level 3) into a small bounded queue; the iterator it
returns takes from that queue, so memory stays bounded whatever the part's size. The
activity ends with the download: success once the consumer has taken the last byte;
cancelled when the consumer stops early (a client that disconnects, whose iterator is
closed), reads nothing for ``STALL_SECONDS``, or someone cancels the activity. Either
way the environment is freed.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import zstandard

from snapkeep.config import EnvironmentConfig
from snapkeep.engines import mysql, volumes
from snapkeep.errors import Cancelled, NotFoundError
from snapkeep.policy import Action, require_role
from snapkeep.services.activities.claims import claim
from snapkeep.services.activities.recorder import ActivityRecorder
from snapkeep.services.activities.running import run
from snapkeep.services.context import Context
from snapkeep.services.snapshots import listing as snapshots
from snapkeep.services.transfer.exportdir import DATABASE_PART, ZSTD_LEVEL, mount_part

CHUNK = 256 << 10  # bytes per queued piece
QUEUE_CHUNKS = 8  # pieces the queue holds: the memory bound is about CHUNK * this
STALL_SECONDS = 300.0  # a consumer that takes nothing for this long ends the download
STEP = 0.5  # seconds between two looks at a stop while waiting on the queue
JOIN_TIMEOUT = 30.0  # seconds the consumer waits for the writer to record the end
LOCK_WAIT = 10.0  # seconds to wait for a prune's exclusive repository lock
EXPORT = "environment.backup.export"  # the activity type (transfer.EXPORT)

_END = object()


class _Download:
    """The queue between the writer thread and the consumer, and how each stops the other."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_CHUNKS)
        self.stopped = threading.Event()
        self.delivered = threading.Event()  # the consumer took the end marker
        self.reason = ""
        self.thread: threading.Thread | None = None

    def stop(self, reason: str) -> None:
        if not self.stopped.is_set():
            self.reason = reason
            self.stopped.set()

    def put(self, item: Any) -> None:
        """Queue ``item``; raises Cancelled when the consumer stopped or stalled."""
        deadline = time.monotonic() + STALL_SECONDS
        while True:
            if self.stopped.is_set():
                raise Cancelled(f"cancelled: {self.reason}")
            try:
                self.queue.put(item, timeout=STEP)
                return
            except queue.Full:
                if time.monotonic() > deadline:
                    self.stop(f"the client read nothing for {STALL_SECONDS:.0f} s")

    def wait_delivered(self) -> None:
        deadline = time.monotonic() + STALL_SECONDS
        while not self.delivered.wait(STEP):
            if self.stopped.is_set():
                raise Cancelled(f"cancelled: {self.reason}")
            if time.monotonic() > deadline:
                self.stop(f"the client read nothing for {STALL_SECONDS:.0f} s")


class _QueueSink:
    """What the compressor writes into: pieces of ``CHUNK`` bytes onto the queue."""

    def __init__(self, download: _Download) -> None:
        self.download = download
        self.buf = bytearray()
        self.sent = 0

    def write(self, data: bytes | memoryview) -> int:
        self.buf += data
        if len(self.buf) >= CHUNK:
            self._send()
        return len(data)

    def flush(self) -> None:
        pass  # pieces go when full: no small writes on the wire

    def writable(self) -> bool:
        return True

    def finish(self) -> None:
        if self.buf:
            self._send()

    def _send(self) -> None:
        piece = bytes(self.buf)
        self.buf.clear()
        self.download.put(piece)
        self.sent += len(piece)


def stream_export(ctx: Context, env: EnvironmentConfig, snapshot_id: str,
                  part: str) -> tuple[str, Iterator[bytes]]:
    """(file name, bytes) of one part of the snapshot's export: ``database.sql.zst`` or
    ``mounts/<mount>.tar.zst``. Needs Admin on ``env``; NotFoundError for a snapshot or
    part that is not there, BusyError when ``env`` runs another activity. Iterate the
    bytes to the end, or close the iterator to stop (the activity then ends cancelled)."""
    require_role(ctx.actor, env.name, Action.SNAPSHOT_EXPORT)
    snap = snapshots.get_snapshot(ctx, env, snapshot_id)
    manifest = snapshots.load_manifest(ctx, snap.id)
    if part == DATABASE_PART and "database" in manifest.services:
        desc, filename = manifest.services["database"], f"{snap.id}-database.sql.zst"
    else:
        mount = next((m for m in manifest.mounts if mount_part(m) == part), None)
        if mount is None:
            have = [DATABASE_PART] if "database" in manifest.services else []
            have += [mount_part(m) for m in manifest.mounts]
            raise NotFoundError(f"snapshot {snap.id} of {env.name} has no part {part!r} to "
                                f"export; it has: {', '.join(have) or 'nothing'}")
        desc = manifest.mounts[mount]
        filename = f"{snap.id}-{mount.replace('/', '-')}.tar.zst"
    download = _Download()
    own = ctx.with_own_repository()  # the writer thread's; the catalog is shared
    c = claim(ctx, env.name, EXPORT,
                         f"{ctx.actor.name} downloaded {part} of backup {snap.id} of {env.name}",
                         {"snapshot_id": snap.id, "part": part, "download": True})

    def work(rec: ActivityRecorder) -> None:

        rec.log(f"Sending {part} of backup {snap.id} of {env.name} to {ctx.actor.name}")
        repo = own.repository
        sink = _QueueSink(download)
        # threads=1: zstd compresses in its own thread, beside the export
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=1)
        with repo.lock(exclusive=False, wait=LOCK_WAIT), \
                compressor.stream_writer(sink, closefd=False) as out:  # type: ignore[arg-type]
            if part == DATABASE_PART:
                mysql.export_sql(desc, repo, out, rec)
            else:
                volumes.export_tar(desc, repo, out, rec)
        sink.finish()
        rec.point_of_no_return("the last bytes of the download")
        download.put(_END)
        download.wait_delivered()
        rec.log(f"Sent {part} ({sink.sent} bytes)")

    def writer() -> None:
        try:
            run(own, c, work)
        except BaseException as e:  # noqa: BLE001 - recorded by run; the consumer re-raises
            if not download.stopped.is_set():
                with contextlib.suppress(Cancelled):
                    download.put(e)

    download.thread = threading.Thread(target=writer, name=f"export-{c.activity.id}",
                                       daemon=True)
    download.thread.start()
    return filename, _consume(download)


def _consume(download: _Download) -> Iterator[bytes]:
    try:
        while True:
            try:
                item = download.queue.get(timeout=STEP)
            except queue.Empty:
                assert download.thread is not None
                if not download.thread.is_alive() and download.queue.empty():
                    raise Cancelled("the export ended without its last bytes") from None
                continue
            if item is _END:
                download.delivered.set()
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        download.stop("the client stopped reading before the end (it disconnected)")
        if download.thread is not None:
            download.thread.join(timeout=JOIN_TIMEOUT)
