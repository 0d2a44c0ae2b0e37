"""Walking a mount: each entry as a snapshot records it, file contents written as blobs.

The walk works relative to open directory descriptors (``O_NOFOLLOW``), so it never
follows a symlink and never leaves the mount, even if the tree changes under it. It visits
entries in tree order (see ``tree``): memory stays bounded by one directory listing per
level plus one piece of file content. ``snapshot.py`` writes the entries into a tree blob;
``digest.tree_digest`` hashes them.

In live mode files may vanish or change while being read: a vanished entry is logged and
left out; a file that changed while read is logged and stored as it was read. A file or
directory that cannot be read is ``ServiceUnavailable`` naming it.

**Files cache** (``snapshot.py`` tells how it is built): a regular file whose path, inode,
size, mtime and ctime all equal the parent snapshot's entry is not opened, its content
``BlobRef`` reused. A file whose ctime lies within ``RACY_WINDOW_NS`` before the moment
it was read ("racily clean", as git calls it), or that changed while read, is recorded
without cache keys, so the next snapshot reads it again. Each reused blob is announced to
a writer that records references (``seams.ReferenceRecorder``: a snapshot session), else
checked with ``seams.ChunkIndex.has_chunk`` where the writer has it; a blob whose chunks
are gone from the repository (IntegrityError) is logged and the file is read instead.

**Hard links.** A regular file with more than one link is remembered by ``(st_dev,
st_ino)`` when first met; a later path to the same inode becomes a ``hardlink`` entry
naming the first path (tree order = walk order, so the same tree gives the same entries).
Links to the inode from outside the mount are simply not seen.

**Sparse files.** One ``lseek(SEEK_HOLE)`` per file: at the file's end, it has no holes
and is read as usual. Otherwise its data extents are found with ``SEEK_DATA``/``SEEK_HOLE``
and only they are stored (``Entry.extents``). The files cache keeps the extents too.

**Extended attributes.** Every attribute the process can list and read (``user.*``,
POSIX ACLs, and ``security.*``/``trusted.*`` as root) is stored with its entry; symlinks
and FIFOs are read through ``/proc/self/fd/<dir fd>/<name>`` without following the entry
(a FIFO is never opened: that would wake a writer waiting for a reader). A cached file's
attributes are reused: changing one changes the ctime.
"""

from __future__ import annotations

import binascii
import errno
import functools
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from snapkeep.engines.seams import BlobSink, ChunkIndex, ReferenceRecorder
from snapkeep.engines.volumes.layout import DIR_FLAGS, is_inner_name, printable
from snapkeep.engines.volumes.tree import (
    DIR,
    FIFO,
    FILE,
    HARDLINK,
    SYMLINK,
    Entry,
    Extents,
    Xattrs,
    decode_xattrs,
    encode_entry,
    file_content,
)
from snapkeep.errors import IntegrityError, ServiceUnavailable
from snapkeep.progress import Reporter
from snapkeep.repository import BlobRef, BlobWriter

PIECE = 4 << 20  # bytes read from a file at a time (into the chunker's window: no buffer)
REPORT_EVERY = 64  # reused files per progress report
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# A file whose ctime is this close to (or after) the start of its read is not cacheable.
RACY_WINDOW_NS = 1_000_000_000

# Errors of an attribute read that mean "none here" (ENOENT: the entry just vanished).
_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA, errno.ENOENT)

# What the files cache keeps per file of the parent tree: the keys (ino, size, mtime_ns,
# ctime_ns), the line's JSON object (its blob, extents and xattrs are decoded and checked
# only when the file is reused) and the line's bytes when the tree may take them over
# verbatim for an unchanged file (``Walk.line``), else None.
Cached = tuple[int, int, int, int, dict[str, Any], bytes | None]


class Walk:
    """One walk of the directory ``root``: ``entries`` yields what a snapshot records."""

    def __init__(self, root: Path, repo: BlobSink, reporter: Reporter,
                 exclude: frozenset[bytes] = frozenset(),
                 cache: dict[bytes, Cached] | None = None) -> None:
        self.root = root
        self.repo = repo
        self.reporter = reporter
        self.exclude = exclude
        self.cache = cache or {}
        # how a reused blob is announced (a snapshot session checks its chunks) or checked
        self.recorder = repo if isinstance(repo, ReferenceRecorder) else None
        self.index = repo if isinstance(repo, ChunkIndex) else None
        self.counts = {"files": 0, "dirs": 0, "symlinks": 0, "fifos": 0, "hardlinks": 0,
                       "bytes": 0, "reused": 0, "reused_bytes": 0}
        self.first_links: dict[tuple[int, int], bytes] = {}  # (dev, ino) -> first path
        self._unreported = (0, 0)  # reused files and bytes not yet given to reporter.advance

    def _report_reused(self) -> None:
        if self._unreported[0]:
            self.reporter.advance(self._unreported[1])
            self._unreported = (0, 0)

    @staticmethod
    def line(entry: Entry | bytes) -> bytes:
        """The tree line of what this walk yielded: an entry's ``encode_entry``, or the
        line itself (a reused file's parent line, yielded as is: ``reuse``)."""
        return entry if isinstance(entry, bytes) else encode_entry(entry)

    def xattrs(self, rel: bytes, target: int | bytes) -> Xattrs:
        """The extended attributes of an open descriptor, or of a path not followed;
        one that cannot be read is a warning line and left out."""
        follow = isinstance(target, int)
        try:
            names = sorted(os.listxattr(target, follow_symlinks=follow))
        except OSError as e:
            if e.errno not in _NO_XATTRS:
                self.reporter.log(f"warning: cannot list the extended attributes of "
                                  f"{self.where(rel)} ({e.strerror}); left out")
            return ()
        out = []
        for name in names:
            try:
                name.encode("utf-8")
                value = os.getxattr(target, name, follow_symlinks=follow)
            except UnicodeEncodeError:
                self.reporter.log(f"warning: the extended attribute {name!r} of "
                                  f"{self.where(rel)} has a name that is not UTF-8; left out")
                continue
            except OSError as e:
                if e.errno != errno.ENODATA:  # ENODATA: removed since it was listed
                    self.reporter.log(f"warning: cannot read the extended attribute {name} "
                                      f"of {self.where(rel)} ({e.strerror}); left out")
                continue
            out.append((name, value))
        return tuple(out)

    def xattrs_at(self, rel: bytes, dir_fd: int, name: bytes) -> Xattrs:
        """Attributes of a symlink or FIFO, by a path through the open directory."""
        return self.xattrs(rel, b"/proc/self/fd/%d/%s" % (dir_fd, name))

    def where(self, rel: bytes) -> str:
        return printable(os.path.join(os.fsencode(self.root), rel) if rel else self.root)

    def unreadable(self, rel: bytes, e: OSError) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"cannot read {self.where(rel)} for the snapshot: {e.strerror}; give the snapkeep "
            "user read access to it or exclude it")

    def listing(self, fd: int, rel: bytes) -> list[bytes]:
        try:
            names = [os.fsencode(name) for name in os.listdir(fd)]
        except OSError as e:
            raise self.unreadable(rel, e) from e
        names.sort()
        if not rel:
            names = [n for n in names if not is_inner_name(n)]
        return names

    def entries(self, root_fd: int) -> Iterator[Entry | bytes]:
        """The mount's entries in tree order; a file reused with its mode and owner
        unchanged comes as its parent tree line (bytes), which is exactly what encoding
        its entry would give (no ``Entry`` built: ~2 µs a file); ``line`` takes both."""
        st = os.fstat(root_fd)
        yield Entry(b"", DIR, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, 0,
                    xattrs=self.xattrs(b"", root_fd))
        stack: list[tuple[int, bytes, Iterator[bytes]]] = [
            (root_fd, b"", iter(self.listing(root_fd, b"")))]
        try:
            while stack:
                fd, rel, names = stack[-1]
                name = next(names, None)
                if name is None:
                    stack.pop()
                    if fd != root_fd:
                        os.close(fd)
                    continue
                child = rel + b"/" + name if rel else name
                if child in self.exclude:
                    continue
                entry, child_fd = self.visit(fd, name, child)
                if entry is None:
                    continue
                yield entry
                if child_fd is not None:
                    stack.append((child_fd, child, iter(self.listing(child_fd, child))))
        finally:
            self._report_reused()
            for fd, _, _ in stack:
                if fd != root_fd:
                    os.close(fd)

    def gone(self, rel: bytes, what: str) -> tuple[None, None]:
        self.reporter.log(f"{self.where(rel)} {what} during the snapshot; left out")
        return None, None

    def visit(self, dir_fd: int, name: bytes, rel: bytes
              ) -> tuple[Entry | bytes | None, int | None]:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return self.gone(rel, "vanished")
        except OSError as e:
            raise self.unreadable(rel, e) from e
        if stat.S_ISDIR(st.st_mode):
            try:
                fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
            except (FileNotFoundError, NotADirectoryError):
                return self.gone(rel, "vanished or changed type")
            except OSError as e:
                if e.errno == errno.ELOOP:
                    return self.gone(rel, "was replaced by a symlink")
                raise self.unreadable(rel, e) from e
            st = os.fstat(fd)
            self.counts["dirs"] += 1
            return Entry(rel, DIR, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                         st.st_mtime_ns, 0, xattrs=self.xattrs(rel, fd)), fd
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(name, dir_fd=dir_fd)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.EINVAL):
                    return self.gone(rel, "vanished or changed type")
                raise self.unreadable(rel, e) from e
            self.counts["symlinks"] += 1
            return Entry(rel, SYMLINK, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                         st.st_mtime_ns, len(target), target=target,
                         xattrs=self.xattrs_at(rel, dir_fd, name)), None
        if stat.S_ISREG(st.st_mode):
            return self.regular(dir_fd, name, rel, st), None
        if stat.S_ISFIFO(st.st_mode):
            self.counts["fifos"] += 1
            return Entry(rel, FIFO, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                         st.st_mtime_ns, 0, xattrs=self.xattrs_at(rel, dir_fd, name)), None
        self.reporter.log(f"warning: skipped {self.where(rel)}: sockets and devices are not "
                          "part of a snapshot")
        return None, None

    def regular(self, dir_fd: int, name: bytes, rel: bytes, st: os.stat_result
                ) -> Entry | bytes | None:
        """A file, or a hard link to a file met before in this walk."""
        key = (st.st_dev, st.st_ino)
        first = self.first_links.get(key) if st.st_nlink > 1 else None
        if first is not None:
            self.counts["hardlinks"] += 1
            return Entry(rel, HARDLINK, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                         st.st_mtime_ns, st.st_size, link=first)
        entry = self.reuse(rel, st) or self.file(dir_fd, name, rel)
        if entry is not None and st.st_nlink > 1:
            self.first_links[key] = rel
        return entry

    def reuse(self, rel: bytes, st: os.stat_result) -> Entry | bytes | None:
        """The entry with the parent's content if the file is unchanged since it (the
        parent's line itself when it encodes that entry: same format, mode and owner);
        else None."""
        cached = self.cache.get(rel)
        if cached is None or cached[:4] != (st.st_ino, st.st_size, st.st_mtime_ns,
                                            st.st_ctime_ns):
            return None
        obj, line = cached[4], cached[5]
        try:
            blob, extents = file_content(obj, st.st_size)
            xattrs = decode_xattrs(obj)
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            self.reporter.log(f"the previous snapshot's entry of {self.where(rel)} is not "
                              f"valid ({e}); reading the file")
            return None
        if not self.referable(rel, blob):
            return None
        counts = self.counts
        counts["files"] += 1
        counts["bytes"] += st.st_size
        counts["reused"] += 1
        counts["reused_bytes"] += st.st_size
        # reported REPORT_EVERY files at a time: a reuse costs microseconds, a progress
        # report (lock, clock, cancel check) about as much again
        files, size = self._unreported
        self._unreported = (files + 1, size + st.st_size)
        if files + 1 >= REPORT_EVERY:
            self._report_reused()
        mode = stat.S_IMODE(st.st_mode)
        if line is not None and (obj.get("mode"), obj.get("uid"), obj.get("gid")) == (
                mode, st.st_uid, st.st_gid):
            return line
        return Entry(rel, FILE, mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_size,
                     blob=blob, ino=st.st_ino, ctime_ns=st.st_ctime_ns, xattrs=xattrs,
                     extents=extents)

    def referable(self, rel: bytes, blob: BlobRef) -> bool:
        """Announce a reused blob to the repository; False (logged) if it lacks a chunk."""
        try:
            if self.recorder is not None:
                self.recorder.add_ref(blob)
            elif self.index is not None and not all(
                    self.index.has_chunk(c) for c, _ in blob.chunks):
                raise IntegrityError("a chunk of its content is missing from the repository")
        except IntegrityError as e:
            self.reporter.log(f"cannot reuse the previous snapshot's copy of {self.where(rel)} "
                              f"({e}); reading it")
            return False
        return True

    def file(self, dir_fd: int, name: bytes, rel: bytes) -> Entry | None:
        self._report_reused()  # progress in order before a read
        started_ns = time.time_ns()
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return self.gone(rel, "vanished")[0]
        except OSError as e:
            if e.errno == errno.ELOOP:
                return self.gone(rel, "was replaced by a symlink")[0]
            raise self.unreadable(rel, e) from e
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                return self.gone(rel, "changed type")[0]
            writer = self.repo.blob_writer()
            size, extents, complete = self.content(fd, rel, before.st_size, writer)
            ref: BlobRef = writer.close()
            xattrs = self.xattrs(rel, fd)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        changed = not complete or _keys(after) != _keys(before)
        if changed:
            self.reporter.log(f"{self.where(rel)} changed while it was read; stored as read")
        self.counts["files"] += 1
        self.counts["bytes"] += size
        cacheable = not changed and before.st_ctime_ns < started_ns - RACY_WINDOW_NS
        return Entry(rel, FILE, stat.S_IMODE(before.st_mode), before.st_uid, before.st_gid,
                     before.st_mtime_ns, size, blob=ref,
                     ino=before.st_ino if cacheable else None,
                     ctime_ns=before.st_ctime_ns if cacheable else None,
                     xattrs=xattrs, extents=extents)

    def content(self, fd: int, rel: bytes, expected: int, writer: BlobWriter
                ) -> tuple[int, Extents | None, bool]:
        """Store the file's data; (logical size, data extents or None when it has no
        holes, whether it was read exactly as ``fstat`` described it). A file without
        holes costs one ``lseek``: its first hole is at its end."""
        try:
            hole = os.lseek(fd, 0, os.SEEK_HOLE) if expected else 0
        except OSError:
            hole = expected  # no hole support: all data
        if hole >= expected:
            end, _ = self.copy(fd, rel, 0, None, writer)
            return end, None, end == expected
        extents: list[tuple[int, int]] = []
        pos = 0
        while pos < expected:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
                stop = min(os.lseek(fd, start, os.SEEK_HOLE), expected)
            except OSError as e:
                if e.errno == errno.ENXIO:  # no data after pos: the rest is a hole
                    break
                raise self.unreadable(rel, e) from e
            if start >= expected:
                break
            end, short = self.copy(fd, rel, start, stop, writer)
            if end > start:
                if extents and extents[-1][0] + extents[-1][1] == start:
                    offset, length = extents.pop()
                    extents.append((offset, length + end - start))
                else:
                    extents.append((start, end - start))
            if short:  # the file shrank while read: it ends here
                self.reporter.advance(max(0, expected - end))
                return end, _sparse(extents, end), False
            pos = stop
        data = sum(n for _, n in extents)
        self.reporter.advance(expected - data)  # the holes count as done too
        return expected, _sparse(extents, expected), True

    def copy(self, fd: int, rel: bytes, start: int, stop: int | None, writer: BlobWriter
             ) -> tuple[int, bool]:
        """Store bytes from ``start`` to ``stop`` (None: to the end of the file); the
        offset reached, and whether the file ended before ``stop``."""
        pos = start
        while stop is None or pos < stop:
            want = PIECE if stop is None else min(PIECE, stop - pos)
            n = writer.write_from(functools.partial(self.read, fd, rel, pos, want))
            if not n:
                return pos, stop is not None
            pos += n
            self.reporter.advance(n)
        return pos, False

    def read(self, fd: int, rel: bytes, pos: int, want: int, into: memoryview) -> int:
        """Read up to ``want`` bytes of the file at ``pos`` into ``into`` (a view of the
        chunker's reused window: no fresh buffer per piece)."""
        try:
            return os.preadv(fd, [into[:want]], pos)
        except OSError as e:
            raise self.unreadable(rel, e) from e


def _sparse(extents: list[tuple[int, int]], size: int) -> Extents | None:
    """The extents of a file with holes; None when they cover it all."""
    if extents == [(0, size)] or (not extents and size == 0):
        return None
    return tuple(extents)


def _keys(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def walk_entries(root: Path, repo: BlobSink, reporter: Reporter) -> Iterator[Entry]:
    """The entries a snapshot of the directory ``root`` would record, in tree order, file
    contents written through ``repo.blob_writer()`` (no files cache, nothing excluded)."""
    walk = Walk(root, repo, reporter)
    try:
        root_fd = os.open(root, DIR_FLAGS)
    except OSError as e:
        raise walk.unreadable(b"", e) from e
    try:
        for entry in walk.entries(root_fd):
            assert isinstance(entry, Entry)  # lines come only from a files cache
            yield entry
    finally:
        os.close(root_fd)
