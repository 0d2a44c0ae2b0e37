"""Building a snapshot's tree in a restore's staging directory (``restore.py`` tells the
whole restore): entries created in tree order relative to directory descriptors opened
with ``O_NOFOLLOW``, so nothing is ever written through a symlink or outside the staging
directory; files filled by a pool of writer threads; directories' attributes set last,
deepest first (``finish_dirs``). Given the live mount, a file the live tree already has
exactly is hard-linked instead, proven equal after the walk and checked again at the
cut-over (``linking`` tells how; ``recheck``)."""

from __future__ import annotations

import ctypes
import errno
import io
import os
import stat
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from snapkeep.engines.seams import BlobSource, ChunkHasher
from snapkeep.engines.volumes import digest, linking
from snapkeep.engines.volumes.attributes import Attributes
from snapkeep.engines.volumes.layout import DIR_FLAGS, is_inner_name, parent_dir, printable
from snapkeep.engines.volumes.tree import DIR, FIFO, HARDLINK, SYMLINK, Entry, decode_tree
from snapkeep.errors import IntegrityError, ServiceUnavailable
from snapkeep.faults import crash_point
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

    def __init__(self, staging: Path, repo: BlobSource, reporter: Reporter,
                 live: Path | None = None) -> None:
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
        # The live mount whose unchanged files are linked (None: every file written), and
        # the staged paths linked so far, in the order they were linked.
        self.live = live if isinstance(repo, ChunkHasher) else None
        self.prover = linking.Prover(repo) if isinstance(repo, ChunkHasher) else None
        self.linked: dict[bytes, linking.Linked] = {}
        self.root: Entry | None = None  # the mount root's entry, once built
        self.root_attrs = True  # whether staging's root gets the root's attributes

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
        # the live directory at each level of ``stack`` (None: not there, nothing to link)
        lives: list[int | None] = [self._open_live()]
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
                    _close(lives.pop())
                if stack[-1][0] != parts[:-1]:
                    raise IntegrityError(
                        f"the snapshot's file tree puts {printable(entry.path)!r} inside "
                        "something that is not a directory restored before it (e.g. a "
                        "symlink); refusing to restore it")
                live_fd = lives[-1]
                if live_fd is not None and len(parts) == 1 and is_inner_name(parts[0]):
                    live_fd = None  # our own work dirs inside a mount point
                try:
                    child_fd = self.create(stack[-1][1], parts[-1], entry, live_fd)
                except OSError as e:
                    raise self.unwritable(self.path(entry.path), e) from e
                if child_fd is not None:
                    stack.append((parts, child_fd))
                    lives.append(_open_dir_at(live_fd, parts[-1]))
            if self.linked:
                crash_point("volumes.linked")
                self._prove_linked()
            self._wait_for_writers()
        finally:
            self._writers.shutdown(wait=True, cancel_futures=True)
            self._writers = None
            self._root_fd = None
            for _, fd in stack:
                os.close(fd)
            for live in lives:
                _close(live)
        self.linked = {p: item for p, item in self.linked.items() if item.proven}
        if root is None:
            raise IntegrityError("the snapshot's file tree is empty (no mount root)")
        self.root = root
        return root

    def create(self, dir_fd: int, name: bytes, entry: Entry, live_fd: int | None = None
               ) -> int | None:
        """Create one entry as ``name`` in ``dir_fd``; a directory's open descriptor. A
        file the live directory ``live_fd`` has as the entry says is linked from it."""
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
        if live_fd is not None and linking.candidate(entry):
            item = linking.try_link(live_fd, dir_fd, name, entry)
            if item is not None:
                self.linked[entry.path] = item
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
                first = self.linked.pop(entry.link, None)
                if first is not None:  # the snapshot's hard links get an inode of their own
                    self._replace(fd, parts[-1], first.entry)
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

        def work() -> None:
            try:
                self.write_file(fd, entry)
            finally:
                os.close(fd)

        try:
            self._submit(work, entry)
        except BaseException:  # not submitted: the fd is still ours
            os.close(fd)
            raise
        # only now: an earlier write's failure raised from the submit would have had the
        # fd closed here too, under the worker that owns it (EBADF, or another file's fd)
        self._reap_finished()

    def _submit(self, work: Callable[[], None], entry: Entry) -> None:
        """Run ``work`` for ``entry`` on a worker thread, at most ``WRITERS * 4`` queued;
        raises only when it was not submitted."""
        self._in_flight.acquire()

        def task() -> None:
            try:
                work()
            except OSError as e:
                raise self.unwritable(self.path(entry.path), e) from e
            finally:
                self._in_flight.release()

        assert self._writers is not None
        try:
            self._pending.append(self._writers.submit(task))
        except BaseException:
            self._in_flight.release()
            raise

    def _reap_finished(self) -> None:
        """Raise the first failure among finished writes, once the oldest has finished."""
        if self._pending and self._pending[0].done():
            self._reap()

    def _open_live(self) -> int | None:
        """The live mount's root directory, to link unchanged files from; None if none."""
        if self.live is None:
            return None
        try:
            return os.open(self.live, DIR_FLAGS)
        except OSError:
            return None  # missing, or not a directory: every file is written

    def _prove_linked(self) -> None:
        """Prove every linked file equal to its entry on the writer threads, each once the
        racy window after its link has passed; one that is not is written fresh."""
        assert self._root_fd is not None and self.prover is not None
        root_fd, prover = self._root_fd, self.prover
        for item in list(self.linked.values()):
            linking.wait_out_racy_window(item.keys[4])

            def work(item: linking.Linked = item) -> None:
                parts = item.entry.parts
                with parent_dir(root_fd, parts) as fd:
                    if prover.proven(fd, parts[-1], item):
                        item.proven = True
                        self.reporter.advance(item.entry.size)
                    else:
                        self._rewrite(fd, parts[-1], item.entry)

            self._submit(work, item.entry)
            self._reap_finished()

    def _replace(self, dir_fd: int, name: bytes, entry: Entry) -> None:
        """Swap a staged link to a live file for a new file, filled by a writer thread
        (unlinking leaves the live inode as it is)."""
        os.unlink(name, dir_fd=dir_fd)
        self._submit_file(os.open(name, _NEW_FILE, 0o600, dir_fd=dir_fd), entry)

    def _rewrite(self, dir_fd: int, name: bytes, entry: Entry, report: bool = True) -> None:
        """Swap a staged link to a live file for a new file written here from the
        repository."""
        os.unlink(name, dir_fd=dir_fd)
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=dir_fd)
        try:
            self.write_file(fd, entry, report)
        finally:
            os.close(fd)

    def recheck(self) -> int:
        """At the cut-over (the app paused): rewrite from the repository every linked file
        whose inode changed in any way since it was proven (``linking``); how many were.
        A path no longer holding its link (replaced by a kept live path) is left alone."""
        if not self.linked:
            return 0
        changed: list[linking.Linked] = []
        root_fd = os.open(self.base, DIR_FLAGS)
        try:
            for rel, item in self.linked.items():
                parts = item.entry.parts
                try:
                    with parent_dir(root_fd, parts) as fd:
                        st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                except OSError as e:
                    if e.errno == errno.ELOOP:
                        continue
                    raise self.unwritable(self.path(rel), e) from e
                if (st.st_dev, st.st_ino) != item.keys[:2]:
                    continue  # not our link any more: a kept path carried over
                if linking.keys_of(st) != item.keys or st.st_nlink != 2:
                    changed.append(item)
            parents: dict[tuple[bytes, ...], None] = {}
            for n, item in enumerate(changed, 1):
                parts = item.entry.parts
                try:
                    with parent_dir(root_fd, parts) as fd:
                        os.fchmod(fd, 0o700)  # a read-only directory's attributes are set
                        self._rewrite(fd, parts[-1], item.entry, report=False)
                except OSError as e:
                    raise self.unwritable(self.path(item.entry.path), e) from e
                del self.linked[item.entry.path]
                parents[parts[:-1]] = None
                crash_point(f"volumes.rewritten-{n}")
        finally:
            os.close(root_fd)
        # the directories' mode and mtime again, as the rewrites changed them
        dirs = {d.parts: d for d in self.dirs}
        for parent in sorted(parents, key=len, reverse=True):
            d = dirs.get(parent) if parent else (self.root if self.root_attrs else None)
            if d is not None:
                self.set_attrs(d)
        return len(changed)

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

    def write_file(self, fd: int, entry: Entry, report: bool = True) -> None:
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
            if report:
                self.reporter.advance(len(chunk))
        if written != entry.stored_size:
            raise IntegrityError(
                f"the content of {printable(entry.path)} in the snapshot has {written} "
                f"bytes instead of {entry.stored_size}: the repository is damaged")
        if entry.extents is not None:
            os.ftruncate(fd, entry.size)  # the holes: never written, never allocated
            if report:
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


def _open_dir_at(dir_fd: int | None, name: bytes) -> int | None:
    """The directory ``name`` in ``dir_fd``, not through a symlink; None if there is none."""
    if dir_fd is None:
        return None
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None


def _close(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)
