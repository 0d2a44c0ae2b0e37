"""Snapshotting a mount: a walk that stores each file's content and the tree as blobs.

The walk works relative to open directory descriptors (``O_NOFOLLOW``), so it never
follows a symlink and never leaves the mount, even if the tree changes under it. It visits
entries in tree order (see ``tree``), writing tree lines as it goes: memory stays bounded
by one directory listing per level plus one chunk of file content.

In live mode files may vanish or change while being read: a vanished entry is logged and
left out; a file that changed while read is logged and stored as it was read. A file or
directory that cannot be read is ``ServiceUnavailable`` naming it.

**Files cache.** Given the previous snapshot of the same mount (``parent``), its tree is
loaded into a dict (path → entry) and a regular file whose path, inode, size, mtime and
ctime all equal the parent entry's is not opened: the parent's content ``BlobRef`` is
reused, so re-snapshotting an unchanged tree costs one ``lstat`` per entry. The ctime
cannot be set by users, so a file replaced or rewritten with its size and mtime restored
still misses the cache. Two guards keep a stale blob from being reused:

- a file that changed while it was read is recorded without cache keys;
- so is a file whose ctime lies within ``RACY_WINDOW_NS`` before the moment it was read
  ("racily clean", as git calls it): filesystems stamp times from a coarse clock, so a
  write landing in the same clock tick right after the read would leave size, mtime and
  ctime unchanged. Such a file is simply read again by the next snapshot.

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

A parent tree that cannot be read or decoded is logged and ignored (every file is read);
a bad cache never fails a snapshot. Each reused blob is announced to the repository
through ``repo.add_ref(ref)`` when the repository object has that method (a snapshot
session must know every blob the snapshot references), else checked with
``repo.has_chunk`` when it has that one; a blob whose chunks are gone from the repository
(IntegrityError) is logged and the file is read instead.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from snapkeep.engines.volumes.digest import TreeDigest
from snapkeep.engines.volumes.layout import is_inner_name, printable, resolve_mount
from snapkeep.engines.volumes.tree import (
    DIR,
    FIFO,
    FILE,
    HARDLINK,
    READABLE_FORMATS,
    SYMLINK,
    TREE_FORMAT,
    Entry,
    Extents,
    Xattrs,
    decode_tree,
    encode_entry,
)
from snapkeep.errors import ConfigError, IntegrityError, ServiceUnavailable, SnapkeepError
from snapkeep.progress import Reporter
from snapkeep.repository.blobs import BlobRef

PIECE = 1 << 20  # bytes read from a file at a time
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# A file whose ctime is this close to (or after) the start of its read is not cacheable.
RACY_WINDOW_NS = 1_000_000_000

# Errors of an attribute read that mean "none here" (ENOENT: the entry just vanished).
_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA, errno.ENOENT)

# What the files cache keeps per file of the parent tree: the keys (ino, size, mtime_ns,
# ctime_ns) and what a reuse takes over (blob, extents, xattrs).
_Cached = tuple[int, int, int, int, BlobRef, Extents | None, Xattrs]


def measure_mount(mount_dir: Path) -> int:
    """Total bytes of regular files under the mount, a hard-linked file once (an estimate
    for progress totals).

    Cheap: one ``lstat`` per entry, symlinks not followed, unreadable parts skipped.
    ConfigError if the mount does not exist or is not a directory.
    """
    root = resolve_mount(mount_dir, must_exist=True)
    total = 0
    linked: set[tuple[int, int]] = set()  # a hard-linked file counts once, as it is read
    pending = [str(root)]
    while pending:
        try:
            with os.scandir(pending.pop()) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            pending.append(e.path)
                        elif e.is_file(follow_symlinks=False):
                            st = e.stat(follow_symlinks=False)
                            if st.st_nlink > 1:
                                if (st.st_dev, st.st_ino) in linked:
                                    continue
                                linked.add((st.st_dev, st.st_ino))
                            total += st.st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def _normalize(rel: str | bytes) -> bytes:
    parts = [p for p in os.fsencode(rel).split(b"/") if p not in (b"", b".")]
    if not parts or b".." in parts:
        raise ConfigError(f"invalid path {rel!r} to exclude: give a path inside the mount")
    return b"/".join(parts)


def _load_cache(parent: dict[str, Any] | None, repo: Any, reporter: Reporter
                ) -> dict[bytes, _Cached]:
    """The parent tree's cacheable files; empty (with a log line) if it cannot be read."""
    if parent is None:
        return {}
    cache: dict[bytes, _Cached] = {}
    try:
        if parent.get("kind") != "volume" or parent.get("format") not in READABLE_FORMATS:
            raise ValueError(f"kind {parent.get('kind')!r}, format {parent.get('format')!r}")
        ref = BlobRef.from_json(parent["tree"])
        with io.BufferedReader(repo.open_blob(ref), 1 << 16) as stream:
            for e in decode_tree(stream):
                if e.type == FILE and e.ino is not None and e.ctime_ns is not None \
                        and e.blob is not None:
                    cache[e.path] = (e.ino, e.size, e.mtime_ns, e.ctime_ns, e.blob,
                                     e.extents, e.xattrs)
    except (SnapkeepError, OSError, KeyError, TypeError, ValueError, AttributeError) as e:
        reporter.log(f"the previous snapshot's file list cannot be used ({e}); "
                     "reading every file")
        return {}
    return cache


class _Walk:
    def __init__(self, root: Path, repo: Any, reporter: Reporter, exclude: frozenset[bytes],
                 cache: dict[bytes, _Cached]):
        self.root = root
        self.repo = repo
        self.reporter = reporter
        self.exclude = exclude
        self.cache = cache
        self.add_ref = getattr(repo, "add_ref", None)  # snapshot sessions (checks chunks)
        self.has_chunk = getattr(repo, "has_chunk", None)
        self.counts = {"files": 0, "dirs": 0, "symlinks": 0, "fifos": 0, "hardlinks": 0,
                       "bytes": 0, "reused": 0, "reused_bytes": 0}
        self.first_links: dict[tuple[int, int], bytes] = {}  # (dev, ino) -> first path

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

    def entries(self, root_fd: int) -> Iterator[Entry]:
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
            for fd, _, _ in stack:
                if fd != root_fd:
                    os.close(fd)

    def gone(self, rel: bytes, what: str) -> tuple[None, None]:
        self.reporter.log(f"{self.where(rel)} {what} during the snapshot; left out")
        return None, None

    def visit(self, dir_fd: int, name: bytes, rel: bytes) -> tuple[Entry | None, int | None]:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return self.gone(rel, "vanished")
        except OSError as e:
            raise self.unreadable(rel, e) from e
        if stat.S_ISDIR(st.st_mode):
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
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
                ) -> Entry | None:
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

    def reuse(self, rel: bytes, st: os.stat_result) -> Entry | None:
        """The entry with the parent's content if the file is unchanged since it; else None."""
        cached = self.cache.get(rel)
        if cached is None or cached[:4] != (st.st_ino, st.st_size, st.st_mtime_ns,
                                            st.st_ctime_ns):
            return None
        blob, extents, xattrs = cached[4:]
        if not self.referable(rel, blob):
            return None
        self.counts["files"] += 1
        self.counts["bytes"] += st.st_size
        self.counts["reused"] += 1
        self.counts["reused_bytes"] += st.st_size
        self.reporter.advance(st.st_size)
        return Entry(rel, FILE, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                     st.st_mtime_ns, st.st_size, blob=blob, ino=st.st_ino,
                     ctime_ns=st.st_ctime_ns, xattrs=xattrs, extents=extents)

    def referable(self, rel: bytes, blob: BlobRef) -> bool:
        """Announce a reused blob to the repository; False (logged) if it lacks a chunk."""
        try:
            if self.add_ref is not None:
                self.add_ref(blob)
            elif self.has_chunk is not None and not all(self.has_chunk(c) for c, _ in blob.chunks):
                raise IntegrityError("a chunk of its content is missing from the repository")
        except IntegrityError as e:
            self.reporter.log(f"cannot reuse the previous snapshot's copy of {self.where(rel)} "
                              f"({e}); reading it")
            return False
        return True

    def file(self, dir_fd: int, name: bytes, rel: bytes) -> Entry | None:
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

    def content(self, fd: int, rel: bytes, expected: int, writer: Any
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

    def copy(self, fd: int, rel: bytes, start: int, stop: int | None, writer: Any
             ) -> tuple[int, bool]:
        """Store bytes from ``start`` to ``stop`` (None: to the end of the file); the
        offset reached, and whether the file ended before ``stop``."""
        pos = start
        while stop is None or pos < stop:
            want = PIECE if stop is None else min(PIECE, stop - pos)
            try:
                piece = os.pread(fd, want, pos)
            except OSError as e:
                raise self.unreadable(rel, e) from e
            if not piece:
                return pos, stop is not None
            writer.write(piece)
            pos += len(piece)
            self.reporter.advance(len(piece))
        return pos, False


def _sparse(extents: list[tuple[int, int]], size: int) -> Extents | None:
    """The extents of a file with holes; None when they cover it all."""
    if extents == [(0, size)] or (not extents and size == 0):
        return None
    return tuple(extents)


def _keys(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def snapshot_mount(mount_dir: Path, repo: Any, reporter: Reporter, *,
                   exclude: frozenset[str] = frozenset(),
                   parent: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store the mount's tree and file contents in ``repo``; return its JSON-able description.

    ``{"kind": "volume", "format": 3, "tree": BlobRef json, "digest": "blake3:<hex>",
    "files": n, "dirs": n, "symlinks": n, "fifos": n, "hardlinks": n, "bytes": n,
    "reused": n, "reused_bytes": n}`` (``digest``: module ``digest``, how a restored copy is
    proven equal; ``dirs`` does not count the mount root; ``files``/``bytes`` count every
    file, by its logical size; ``hardlinks`` a file's further paths, not in ``files``;
    ``reused``/``reused_bytes`` the files taken unread from ``parent``). ``exclude`` names
    paths relative to the mount to leave out (a directory with its contents). ``parent``:
    the previous snapshot's description of the same mount, for the files cache (see the
    module docstring), or None.
    Progress: ``reporter.advance`` with the bytes of each file, read or reused; the caller
    sets the total (``measure_mount``). Raises ConfigError (no such mount),
    ServiceUnavailable (unreadable).
    """
    root = resolve_mount(mount_dir, must_exist=True)
    cache = _load_cache(parent, repo, reporter)
    walk = _Walk(root, repo, reporter, frozenset(_normalize(p) for p in exclude), cache)
    try:
        root_fd = os.open(root, _DIR_FLAGS)
    except OSError as e:
        raise walk.unreadable(b"", e) from e
    digest = TreeDigest()
    try:
        tree_writer = repo.blob_writer()
        for entry in walk.entries(root_fd):
            line = encode_entry(entry)
            tree_writer.write(line)
            digest.add_line(line)
        tree = tree_writer.close()
    finally:
        os.close(root_fd)
    if parent is not None:
        c = walk.counts
        reporter.log(
            f"{printable(root)}: {c['reused']} unchanged files reused without reading "
            f"({c['reused_bytes']} bytes skipped), {c['files'] - c['reused']} files read")
    return {"kind": "volume", "format": TREE_FORMAT, "tree": tree.to_json(),
            "digest": digest.hexdigest(), **walk.counts}


def walk_entries(root: Path, repo: Any, reporter: Reporter) -> Iterator[Entry]:
    """The entries a snapshot of the directory ``root`` would record, in tree order, file
    contents written through ``repo.blob_writer()`` (no files cache, nothing excluded)."""
    walk = _Walk(root, repo, reporter, frozenset(), {})
    try:
        root_fd = os.open(root, _DIR_FLAGS)
    except OSError as e:
        raise walk.unreadable(b"", e) from e
    try:
        yield from walk.entries(root_fd)
    finally:
        os.close(root_fd)
