"""An import directory as the tar stream ``POST …/backups/import`` takes (docs/api.md).

``members`` picks what an import reads (``services/transfer/import_source.py``), in the order the
server can check soonest: ``snapkeep-export.json`` and the files it lists; or the SQL
dumps at the top, ``mounts/**/*.tar.zst`` and the directories of the environment's mounts.
``TarBody`` writes them as an uncompressed tar (``tarfile`` in stream mode ``w|``; the
parts are compressed already) in a thread of its own, handing pieces to the HTTP client
through a small queue, so memory stays bounded whatever the directory's size.
"""

from __future__ import annotations

import contextlib
import os
import queue
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snapkeep.errors import UsageError
from snapkeep.services.transfer.exportdir import METADATA, read_metadata
from snapkeep.services.transfer.import_source import SQL_SUFFIXES

PIECE = 1 << 20  # bytes per piece handed to the HTTP client
QUEUE_PIECES = 4  # pieces waiting: the memory bound is about PIECE * this
STEP = 0.5  # seconds between two looks at a stop while the queue is full
_END = object()


@dataclass(frozen=True)
class Member:
    path: Path  # on this machine
    name: str  # in the tar (relative to the import directory)
    tree: bool = False  # a mount's directory, sent with everything in it


def members(source: Path, mounts: list[str]) -> list[Member]:
    """What of ``source`` an import of an environment with ``mounts`` reads; UsageError
    when ``source`` is no directory, or an export in it lacks a file it lists."""
    if not source.is_dir():
        raise UsageError(f"{source} is not a directory: give the directory holding the export "
                         "(snapkeep-export.json) or the SQL dump and mount directories")
    meta = read_metadata(source)
    if meta is not None:
        out = [Member(source / METADATA, METADATA)]
        for name in meta["files"]:
            if not (source / name).is_file():
                raise UsageError(f"the export in {source} lists {name}, which cannot be read; "
                                 "the export is incomplete: export again")
            out.append(Member(source / name, name))
        return out
    out = [Member(p, p.name) for p in sorted(source.iterdir())
           if p.is_file() and p.name.lower().endswith(SQL_SUFFIXES)]
    tars = source / "mounts"
    if tars.is_dir():
        out += [Member(p, p.relative_to(source).as_posix())
                for p in sorted(tars.rglob("*.tar.zst")) if p.is_file()]
    sent: list[str] = []
    for m in sorted(mounts):
        if (source / m).is_dir() and not any(m.startswith(f"{s}/") for s in sent):
            out.append(Member(source / m, m, tree=True))  # a nested mount comes with its parent
            sent.append(m)
    return out


def content_bytes(items: list[Member]) -> int:
    """The bytes of file content the tar of ``items`` carries (tar headers aside), for the
    server's free-space check before the upload."""
    total = 0
    for item in items:
        if not item.tree:
            total += item.path.stat().st_size
            continue
        for dirpath, _dirs, files in os.walk(item.path):  # links not followed, as sent
            for name in files:
                st = os.lstat(os.path.join(dirpath, name))
                if stat.S_ISREG(st.st_mode):
                    total += st.st_size
    return total


class _Stopped(Exception):
    """The HTTP client stopped taking pieces (the request failed or was abandoned)."""


class _QueueSink:
    """What the tar is written into: pieces of ``PIECE`` bytes onto the queue."""

    def __init__(self, body: TarBody) -> None:
        self.body = body
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        if len(self.buf) >= PIECE:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buf:
            self.body.put(bytes(self.buf))
            self.buf.clear()


class TarBody:
    """The tar of ``items`` as an iterable of byte pieces (an httpx request body). Counts
    ``files`` and ``bytes`` sent; ``on_skip`` hears of entries a snapshot leaves out
    (devices, FIFOs, sockets), which are not sent."""

    def __init__(self, items: list[Member], on_skip: Callable[[str], None] | None = None
                 ) -> None:
        self.items = items
        self.on_skip = on_skip
        self.files = 0
        self.bytes = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_PIECES)
        self._stop = threading.Event()

    def put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=STEP)
                return
            except queue.Full:
                continue
        raise _Stopped()

    def __iter__(self) -> Iterator[bytes]:
        writer = threading.Thread(target=self._write, name="import-upload", daemon=True)
        writer.start()
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop.set()  # the writer stops at its next piece
            writer.join(timeout=30)

    def _write(self) -> None:
        sink = _QueueSink(self)
        try:
            # typeshed wants a seekable, readable file even for a "w|" stream (a library gap)
            with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT,  # type: ignore[call-overload]
                              encoding="utf-8", errors="surrogateescape") as tar:
                for item in self.items:
                    self._add(tar, item)
            sink.flush()
            self.put(_END)
        except _Stopped:
            pass
        except OSError as e:
            self._fail(UsageError(f"cannot read {e.filename or 'a file'} to upload it: "
                                  f"{e.strerror or e}; fix it and import again"))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            self._fail(e)

    def _fail(self, e: BaseException) -> None:
        with contextlib.suppress(_Stopped):
            self.put(e)

    def _add(self, tar: tarfile.TarFile, item: Member) -> None:
        if not item.tree:  # a part: what a local import would read, links followed
            with open(item.path, "rb") as f:
                info = tar.gettarinfo(arcname=item.name, fileobj=f)
                self._count(info)
                tar.addfile(info, f)
            return
        # A mount's directory: its root followed if it is a link (as a local import walks
        # it), everything inside as it is (links as links).
        st = item.path.stat()
        root = tarfile.TarInfo(item.name)
        root.type, root.mode, root.mtime = tarfile.DIRTYPE, stat.S_IMODE(st.st_mode), st.st_mtime
        root.uid, root.gid = st.st_uid, st.st_gid
        _exact_mtime(root, st.st_mtime_ns)
        tar.addfile(root)

        def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            if not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
                if self.on_skip is not None:
                    self.on_skip(f"skipped {info.name}: sockets, FIFOs and devices are not "
                                 "part of a snapshot")
                return None
            local = item.path / info.name[len(item.name) + 1:]
            _exact_mtime(info, local.lstat().st_mtime_ns)
            return self._count(info)

        for child in sorted(item.path.iterdir()):
            tar.add(str(child), f"{item.name}/{child.name}", filter=keep)

    def _count(self, info: tarfile.TarInfo) -> tarfile.TarInfo:
        if info.isreg():
            self.files += 1
            self.bytes += info.size
        return info


def _exact_mtime(info: tarfile.TarInfo, ns: int) -> None:
    """The mtime to the nanosecond in the member's pax header (``tarfile`` alone writes a
    float), as a local import's walk reads it and ``extract_tar`` sets it."""
    sign = "-" if ns < 0 else ""
    secs, frac = divmod(abs(ns), 10**9)
    info.pax_headers = {**info.pax_headers, "mtime": f"{sign}{secs}.{frac:09d}"}
