"""Building a snapshot's tree in a restore's staging directory (``restore.py`` tells the
whole restore): entries created in tree order relative to directory descriptors opened
with ``O_NOFOLLOW``, so nothing is ever written through a symlink or outside the staging
directory; files filled by a pool of writer threads; directories' attributes set last,
deepest first (``finish_dirs``)."""

from __future__ import annotations

import ctypes
import errno
import io
import os
import stat
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from snapkeep.engines.seams import BlobSource
from snapkeep.engines.volumes import digest
from snapkeep.engines.volumes.attributes import Attributes
from snapkeep.engines.volumes.layout import DIR_FLAGS, parent_dir, printable
from snapkeep.engines.volumes.tree import DIR, FIFO, HARDLINK, SYMLINK, Entry, decode_tree
from snapkeep.errors import IntegrityError, ServiceUnavailable
from snapkeep.progress import Reporter
from snapkeep.repository import BlobRef

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_FIFO_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
# Files restored at once: reading, decrypting, hashing and writing release the GIL.
WRITERS = max(2, os.cpu_count() or 2)


_SYNC_FILE_RANGE_WRITE = 2


def _writeback_call() -> Any:
    """libc's ``sync_file_range`` (Linux), or None."""
    try:
        f = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    f.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    f.restype = ctypes.c_int
    return f


_sync_file_range = _writeback_call()


def start_writeback(fd: int) -> None:
    """Start writing a restored file's dirty pages to disk without waiting for it: the
    swap's ``os.sync()`` then finds the disk mostly done instead of writing the whole
    tree (about 1 s per GiB) after staging. Best effort: durability is the sync's job."""
    if _sync_file_range is not None:
        _sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def presize(fd: int, size: int) -> None:
    """Allocate a file's blocks before its content is written (one extent request, not
    one per write; a full disk fails here, before any byte of it). Files with holes are
    not pre-sized: their holes must stay unallocated. A filesystem without fallocate is
    simply written as before."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


def _unsafe(name: bytes) -> bool:
    return name in (b"", b".", b"..") or b"/" in name or b"\0" in name


class Builder:
    """Writes one snapshot tree into one staging directory."""

    def __init__(self, staging: Path, repo: BlobSource, reporter: Reporter) -> None:
        self.staging = staging
        self.base = os.fsencode(staging)
        self.repo = repo
        self.reporter = reporter
        self.attrs = Attributes(reporter)
        self.dirs: list[Entry] = []
        self._writers: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._in_flight = threading.BoundedSemaphore(WRITERS * 4)
        self._root_fd: int | None = None

    def path(self, rel: bytes) -> bytes:
        return self.base + b"/" + rel if rel else self.base

    def unwritable(self, path: Path | bytes | str, e: OSError) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"cannot write {printable(path)} while staging the restore: {e.strerror}; "
            "free space or fix permissions on the mount's filesystem and retry")

    def build(self, ref: BlobRef, description: dict[str, Any]) -> Entry:
        with io.BufferedReader(self.repo.open_blob(ref), 1 << 16) as stream:
            lines = digest.checked(stream, description)  # hashed as decode_tree reads them
            return self.materialize(decode_tree(lines))

    def materialize(self, entries: Iterable[Entry]) -> Entry:
        """Create ``entries`` (tree order) in staging; return the root entry.

        A second line of defence behind ``decode_tree``: every entry is created by a single
        safe name relative to the open descriptor of its parent directory, itself created
        here and opened with ``O_NOFOLLOW``; an entry whose parent is not such a directory
        (a symlink entry, a file, a missing one) is IntegrityError naming it. So whatever
        the tree says, nothing is written outside the staging directory.
        """
        root: Entry | None = None
        prev: tuple[bytes, ...] = ()
        stack: list[tuple[tuple[bytes, ...], int]] = [((), os.open(self.base, DIR_FLAGS))]
        self._root_fd = stack[0][1]
        self._writers = ThreadPoolExecutor(WRITERS, thread_name_prefix="snapkeep-restore")
        try:
            for entry in entries:
                if entry.path == b"" and root is None:
                    root = entry
                    continue
                if root is None:
                    raise IntegrityError(
                        "the snapshot's file tree does not start with the mount root")
                parts = entry.parts
                if not parts or any(_unsafe(p) for p in parts):
                    raise IntegrityError(
                        f"the snapshot's file tree names the unsafe path "
                        f"{printable(entry.path)!r}; refusing to restore it")
                if parts <= prev:
                    raise IntegrityError(
                        f"the snapshot's file tree lists {printable(entry.path)!r} out of order "
                        "or twice; refusing to restore it")
                prev = parts
                while len(stack) > 1 and stack[-1][0] != parts[: len(stack[-1][0])]:
                    os.close(stack.pop()[1])
                if stack[-1][0] != parts[:-1]:
                    raise IntegrityError(
                        f"the snapshot's file tree puts {printable(entry.path)!r} inside "
                        "something that is not a directory restored before it (e.g. a "
                        "symlink); refusing to restore it")
                try:
                    child_fd = self.create(stack[-1][1], parts[-1], entry)
                except OSError as e:
                    raise self.unwritable(self.path(entry.path), e) from e
                if child_fd is not None:
                    stack.append((parts, child_fd))
            self._wait_for_writers()
        finally:
            self._writers.shutdown(wait=True, cancel_futures=True)
            self._writers = None
            self._root_fd = None
            for _, fd in stack:
                os.close(fd)
        if root is None:
            raise IntegrityError("the snapshot's file tree is empty (no mount root)")
        return root

    def create(self, dir_fd: int, name: bytes, entry: Entry) -> int | None:
        """Create one entry as ``name`` in ``dir_fd``; a directory's open descriptor."""
        if entry.type == DIR:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
            fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
            self.dirs.append(entry)
            return fd
        if entry.type == SYMLINK:
            assert entry.target is not None
            os.symlink(entry.target, name, dir_fd=dir_fd)
            if self.attrs.as_root:
                os.chown(name, entry.uid, entry.gid, dir_fd=dir_fd, follow_symlinks=False)
            self.attrs.set_xattrs(b"/proc/self/fd/%d/%s" % (dir_fd, name), entry)
            os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=dir_fd,
                     follow_symlinks=False)
            return None
        if entry.type == FIFO:
            os.mkfifo(name, 0o600, dir_fd=dir_fd)
            fd = os.open(name, _FIFO_FLAGS, dir_fd=dir_fd)  # ours: no writer waits on it
            try:
                self.attrs.set_inode(fd, entry)
            finally:
                os.close(fd)
            return None
        if entry.type == HARDLINK:
            self.link(dir_fd, name, entry)
            return None
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=dir_fd)
        self._submit_file(fd, entry)
        return None

    def link(self, dir_fd: int, name: bytes, entry: Entry) -> None:
        """Link ``name`` to the file restored at the entry's first path: a regular file
        under real directories of the staging tree, or IntegrityError."""
        assert entry.link is not None and self._root_fd is not None
        parts = entry.link.split(b"/")
        try:
            with parent_dir(self._root_fd, parts) as fd:
                if not stat.S_ISREG(os.stat(parts[-1], dir_fd=fd,
                                            follow_symlinks=False).st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, "not a regular file")
                os.link(parts[-1], name, src_dir_fd=fd, dst_dir_fd=dir_fd,
                        follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError) as e:
            raise IntegrityError(
                f"the snapshot's file tree makes {printable(entry.path)!r} a hard link to "
                f"{printable(entry.link)!r}, which is not a file restored before it; refusing "
                "to restore it") from e
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise IntegrityError(
                    f"the snapshot's file tree makes {printable(entry.path)!r} a hard link "
                    f"through the symlink {printable(entry.link)!r}; refusing to restore it"
                ) from e
            raise

    def _submit_file(self, fd: int, entry: Entry) -> None:
        """Fill a created file on a worker thread: reading, decrypting and hashing chunks
        and the write itself release the GIL, so files are restored in parallel. The
        worker owns (and closes) ``fd``."""
        try:
            self._in_flight.acquire()
        except BaseException:
            os.close(fd)
            raise

        def task() -> None:
            try:
                self.write_file(fd, entry)
            except OSError as e:
                raise self.unwritable(self.path(entry.path), e) from e
            finally:
                os.close(fd)
                self._in_flight.release()

        assert self._writers is not None
        try:
            self._pending.append(self._writers.submit(task))
        except BaseException:
            os.close(fd)
            self._in_flight.release()
            raise
        if self._pending[0].done():
            self._reap()

    def _reap(self) -> None:
        """Raise the first failure among finished writes; forget the finished ones."""
        still = []
        for f in self._pending:
            if f.done():
                f.result()
            else:
                still.append(f)
        self._pending = still

    def _wait_for_writers(self) -> None:
        for f in self._pending:
            f.result()
        self._pending = []

    def write_file(self, fd: int, entry: Entry) -> None:
        assert entry.blob is not None
        # Where the blob's bytes go: the data extents of a sparse file, else all of it.
        places = list(entry.extents) if entry.extents is not None else [(0, entry.size)]
        index, (offset, room) = 0, places[0] if places else (0, 0)
        if entry.extents is None and entry.size:
            presize(fd, entry.size)
        written = 0
        for chunk in self.repo.open_blob(entry.blob).iter_views():
            view = chunk
            while view:
                while room == 0 and index + 1 < len(places):
                    index += 1
                    offset, room = places[index]
                if room == 0:
                    written += len(view)  # more content than the entry says: damaged
                    break
                n = os.pwrite(fd, view[:room], offset)
                view, offset, room, written = view[n:], offset + n, room - n, written + n
            self.reporter.advance(len(chunk))
        if written != entry.stored_size:
            raise IntegrityError(
                f"the content of {printable(entry.path)} in the snapshot has {written} "
                f"bytes instead of {entry.stored_size}: the repository is damaged")
        if entry.extents is not None:
            os.ftruncate(fd, entry.size)  # the holes: never written, never allocated
            self.reporter.advance(entry.size - entry.stored_size)
        start_writeback(fd)
        self.attrs.set_inode(fd, entry)

    def set_attrs(self, entry: Entry) -> None:
        """A directory's attributes (``Attributes.set_dir``), set through a descriptor
        opened one component at a time from the staging directory (a path that fits
        PATH_MAX under the mount does not always fit under the longer staging name)."""
        try:
            fd = self._open_dir(entry.parts)
            if fd is None:
                return  # replaced by something kept from the live mount
            try:
                self.attrs.set_dir(fd, entry)
            finally:
                os.close(fd)
        except OSError as e:
            raise self.unwritable(self.path(entry.path), e) from e

    def _open_dir(self, parts: tuple[bytes, ...]) -> int | None:
        """The staging directory's ``parts`` opened without following symlinks; None when
        the last one is not a directory."""
        fd = os.open(self.base, DIR_FLAGS)
        try:
            for i, part in enumerate(parts):
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except (NotADirectoryError, OSError) as e:
                    last = i == len(parts) - 1
                    if last and (isinstance(e, NotADirectoryError) or e.errno == errno.ELOOP):
                        os.close(fd)
                        return None
                    raise
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def finish_dirs(self) -> None:
        for entry in reversed(self.dirs):  # pre-order reversed: contents before their dir
            self.set_attrs(entry)
