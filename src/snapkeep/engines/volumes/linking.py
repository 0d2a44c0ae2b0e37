"""A restore in place keeps the live files that are already right: linked, not rewritten.

When the live file at a path already is the snapshot's — same type, mode, owner, mtime,
size, no holes, the same extended attributes and the same content — staging hard-links
the live inode instead of writing it from the repository, and the deletion of the
previous tree after the swap only unlinks it. The live inode's content, mode, owner,
mtime and attributes are never changed (a link only bumps its link count and ctime).
Only a file with one link in the live tree and one entry in the snapshot qualifies:
hard links on either side, sparse files, FIFOs and symlinks are written fresh.

Staging runs while the app is live, so the proof is built in an order that lets the
paused cut-over check it with one ``stat`` per file:

1. ``try_link`` (walk, main thread): the live path's ``lstat`` matches the entry, it is
   linked into staging, and the link's own ``stat`` (one more link, a new ctime) is
   recorded: ``(dev, ino, size, mtime_ns, ctime_ns)``.
2. ``Prover.proven`` (writer threads, after the walk): only once the clock has passed
   that ctime by ``walk.RACY_WINDOW_NS`` (the files cache's rule: a change after the
   hash started must give a later ctime, even on a filesystem with coarse timestamps),
   the file is read once, each piece at the snapshot's recorded chunk boundaries hashed
   with the repository's keyed hash and compared with the chunk's id; its attributes are
   compared too, and its ``fstat`` before and after the read must equal the record.
   Any difference: the link is replaced by a file written from the repository.
3. ``recheck`` (the cut-over, app paused): a linked file whose ``stat`` differs from the
   record in any way — or that is no longer linked twice — is rewritten from the
   repository before the swap. Unchanged keys mean no write, attribute change or rename
   since the hash started, so the swapped-in tree is exactly the snapshot's.

A linked inode is shared by the previous tree and the new one until ``finish`` unlinks
the previous path: rollback, cleanup and recovery only rename and unlink, never write,
``chmod`` or ``utime`` a file, so the previous tree comes back exactly as it was. A
process holding a linked file open across the cut-over writes into the restored file (a
rewritten one keeps the previous inode): as with any write after the cut-over, the pause
is what keeps the app's writes out.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from dataclasses import dataclass

from snapkeep.engines.seams import ChunkHasher
from snapkeep.engines.volumes import walk
from snapkeep.engines.volumes.tree import Entry, Xattrs

# (dev, ino, size, mtime_ns, ctime_ns) of a linked inode as recorded after its link
Keys = tuple[int, int, int, int, int]

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)  # the proof's read leaves the live atime alone


@dataclass
class Linked:
    """A staged path that is a hard link to the live file at the same path."""

    entry: Entry
    keys: Keys
    proven: bool = False


def keys_of(st: os.stat_result) -> Keys:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def matches(st: os.stat_result, entry: Entry, nlink: int) -> bool:
    """The inode is a regular file with the entry's mode, owner, mtime and size, and
    exactly ``nlink`` links."""
    return (stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == entry.mode
            and st.st_uid == entry.uid and st.st_gid == entry.gid
            and st.st_mtime_ns == entry.mtime_ns and st.st_size == entry.size
            and st.st_nlink == nlink)


def candidate(entry: Entry) -> bool:
    """An entry a live file can stand in for: a plain file whose chunks cover its size."""
    return (entry.blob is not None and entry.extents is None
            and sum(n for _, n in entry.blob.chunks) == entry.size)


def try_link(live_fd: int, dir_fd: int, name: bytes, entry: Entry) -> Linked | None:
    """Link the live ``name`` (in ``live_fd``) as ``name`` in ``dir_fd`` when its ``lstat``
    matches ``entry``; the record of the link, or None (nothing created)."""
    try:
        st = os.stat(name, dir_fd=live_fd, follow_symlinks=False)
    except OSError:
        return None
    if not matches(st, entry, 1):
        return None
    try:  # linkat without following: a symlink swapped in is linked as itself, seen below
        os.link(name, name, src_dir_fd=live_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None  # another filesystem below the mount, protected_hardlinks, EMLINK
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not matches(st, entry, 2):  # changed or replaced between the lstat and the link
        os.unlink(name, dir_fd=dir_fd)
        return None
    return Linked(entry, keys_of(st))


def wait_out_racy_window(ctime_ns: int) -> None:
    """Sleep until a change made from now on would give a ctime later than ``ctime_ns``
    (at most the window: after a clock step back the proof refuses the file instead)."""
    delay = ctime_ns + walk.RACY_WINDOW_NS - time.time_ns()
    if delay >= 0:
        time.sleep(min(delay, walk.RACY_WINDOW_NS) / 1e9 + 0.001)


def xattrs_of(fd: int) -> Xattrs | None:
    """A file's extended attributes as a snapshot records them; None when they cannot
    all be read (then the file is written fresh)."""
    try:
        names = sorted(os.listxattr(fd))
        return tuple((n, os.getxattr(fd, n)) for n in names)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return ()
        return None


class Prover:
    """Proves linked files equal to their entries (thread-safe: one read buffer a thread)."""

    def __init__(self, hasher: ChunkHasher) -> None:
        self.hasher = hasher
        self._local = threading.local()

    def _buffer(self, size: int) -> memoryview:
        buf: bytearray | None = getattr(self._local, "buf", None)
        if buf is None or len(buf) < size:
            buf = self._local.buf = bytearray(size)
        return memoryview(buf)

    def proven(self, dir_fd: int, name: bytes, item: Linked) -> bool:
        """Whether the staged link ``name`` is still the recorded inode, unchanged, with
        the entry's attributes and content (read once, at the recorded chunk bounds)."""
        started = time.time_ns()
        if item.keys[4] >= started - walk.RACY_WINDOW_NS:
            return False  # not waited out (a clock step): a change could hide in its tick
        try:
            fd = os.open(name, _READ_FLAGS | _NOATIME, dir_fd=dir_fd)
        except PermissionError:  # O_NOATIME needs the file's owner
            try:
                fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
            except PermissionError:
                return False  # unreadable to us: written from the repository instead
        try:
            return self._same(fd, item)
        finally:
            os.close(fd)

    def _same(self, fd: int, item: Linked) -> bool:
        entry = item.entry
        assert entry.blob is not None
        st = os.fstat(fd)
        if keys_of(st) != item.keys or not matches(st, entry, 2):
            return False
        if entry.size:
            try:
                if os.lseek(fd, 0, os.SEEK_HOLE) < entry.size:
                    return False  # holes the snapshot does not have
            except OSError:
                pass  # no hole support: no holes
        if xattrs_of(fd) != entry.xattrs:
            return False
        if entry.blob.chunks:
            view = self._buffer(max(n for _, n in entry.blob.chunks))
            pos = 0
            for cid, n in entry.blob.chunks:
                got = 0
                while got < n:
                    r = os.preadv(fd, [view[got:n]], pos + got)
                    if r == 0:
                        return False  # shorter than recorded: changed
                    got += r
                if self.hasher.chunk_id(view[:n]) != cid:
                    return False
                pos += n
        return keys_of(os.fstat(fd)) == item.keys
