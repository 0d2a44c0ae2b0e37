"""Restoring a mount, step one: build the complete new tree in a staging directory.

``prepare_restore`` writes every entry of the snapshot's tree into a hidden staging
directory on the mount's filesystem (see ``layout``), reading each file from the
repository with every chunk hash-checked, then sets directory modes and mtimes deepest
first (so read-only directories and mtimes survive their own contents being written).
The tree is untrusted data: ``decode_tree`` refuses unsafe paths, and entries are created
relative to directory descriptors opened with ``O_NOFOLLOW`` (``_Builder.materialize``),
so no entry is ever written through a symlink or outside the staging directory.
Ownership is restored only when running as root; otherwise files belong to the restoring
user. Per inode the order is: content, owner (``chown`` clears setuid/setgid and file
capabilities), extended attributes, mode, mtime. An attribute the target filesystem or
user cannot set is a ``warning:`` line on the activity, not a failure. The staging
directory loses any default ACL it inherited, and directories get their own attributes
only after their contents, so nothing inherits an ACL the snapshot does not have.

Files are created by the walk (in tree order) and filled by a pool of writer threads, so
a hard link entry is linked at once to its first path's inode, which exists (maybe not yet
filled: content and attributes are the inode's, the same for every link). A sparse file
gets its data extents written at their offsets and its size by ``ftruncate``: the holes
stay unallocated.

Any failure (damaged chunk, full disk, interrupt) removes the staging directory and
re-raises: the live mount is never touched before ``PreparedMountRestore.swap``.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from snapkeep.engines.volumes import digest
from snapkeep.engines.volumes.layout import (
    STAGING,
    inner,
    is_mount_point,
    new_token,
    printable,
    remove_tree,
    resolve_mount,
    sibling,
)
from snapkeep.engines.volumes.swap import PreparedMountRestore, cleanup_leftovers
from snapkeep.engines.volumes.tree import (
    DIR,
    FIFO,
    HARDLINK,
    SYMLINK,
    Entry,
    decode_tree,
    tree_ref,
)
from snapkeep.errors import ConfigError, IntegrityError, ServiceUnavailable
from snapkeep.progress import Reporter
from snapkeep.repository.blobs import BlobRef

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FIFO_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
ACLS = ("system.posix_acl_access", "system.posix_acl_default")
# Errors of setting an attribute that are the disk's fault, not the attribute's.
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EIO)
WARNINGS_SHOWN = 20  # attribute warnings logged one by one; the rest are counted
# Files restored at once: reading, decrypting, hashing and writing release the GIL.
WRITERS = max(2, os.cpu_count() or 2)


def _unsafe(name: bytes) -> bool:
    return name in (b"", b".", b"..") or b"/" in name or b"\0" in name


def _keep_path(rel: str) -> tuple[str, ...]:
    parts = tuple(p for p in rel.split("/") if p not in ("", "."))
    if not parts or ".." in parts:
        raise ConfigError(f"invalid path {rel!r} to keep: give a path inside the mount")
    return parts


class _Builder:
    def __init__(self, staging: Path, repo: Any, reporter: Reporter) -> None:
        self.staging = staging
        self.base = os.fsencode(staging)
        self.repo = repo
        self.reporter = reporter
        self.as_root = os.geteuid() == 0
        self.dirs: list[Entry] = []
        self._writers: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._in_flight = threading.BoundedSemaphore(WRITERS * 4)
        self._root_fd: int | None = None
        self._warn_lock = threading.Lock()
        self.unset_attrs = 0  # extended attributes that could not be set

    def set_xattrs(self, target: int | bytes, entry: Entry) -> None:
        """Set the entry's extended attributes on an open descriptor or on a path (not
        followed); one the filesystem or user refuses is a warning, not a failure."""
        follow = isinstance(target, int)
        for name, value in entry.xattrs:
            try:
                os.setxattr(target, name, value, follow_symlinks=follow)
            except OSError as e:
                if e.errno in _DISK_ERRORS:
                    raise
                with self._warn_lock:
                    self.unset_attrs += 1
                    shown = self.unset_attrs <= WARNINGS_SHOWN
                if shown:
                    self.reporter.log(
                        f"warning: cannot set the extended attribute {name} on "
                        f"{printable(entry.path) or '(the mount root)'} ({e.strerror}); "
                        "restored without it")

    def warn_summary(self) -> None:
        if self.unset_attrs > WARNINGS_SHOWN:
            self.reporter.log(f"warning: {self.unset_attrs - WARNINGS_SHOWN} more extended "
                              "attributes could not be set (see the warnings above)")

    def path(self, rel: bytes) -> bytes:
        return self.base + b"/" + rel if rel else self.base

    def unwritable(self, path: Path | bytes | str, e: OSError) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"cannot write {printable(path)} while staging the restore: {e.strerror}; "
            "free space or fix permissions on the mount's filesystem and retry")

    def build(self, ref: BlobRef, description: dict[str, Any]) -> Entry:
        with io.BufferedReader(self.repo.open_blob(ref), 1 << 16) as stream:
            lines = digest.checked(stream, description)  # hashed as decode_tree reads them
            return self.materialize(decode_tree(lines))  # type: ignore[arg-type]

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
        stack: list[tuple[tuple[bytes, ...], int]] = [((), os.open(self.base, _DIR_FLAGS))]
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
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            self.dirs.append(entry)
            return fd
        if entry.type == SYMLINK:
            assert entry.target is not None
            os.symlink(entry.target, name, dir_fd=dir_fd)
            if self.as_root:
                os.chown(name, entry.uid, entry.gid, dir_fd=dir_fd, follow_symlinks=False)
            self.set_xattrs(b"/proc/self/fd/%d/%s" % (dir_fd, name), entry)
            os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=dir_fd,
                     follow_symlinks=False)
            return None
        if entry.type == FIFO:
            os.mkfifo(name, 0o600, dir_fd=dir_fd)
            fd = os.open(name, _FIFO_FLAGS, dir_fd=dir_fd)  # ours: no writer waits on it
            try:
                self.set_inode_attrs(fd, entry)
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
        fds: list[int] = []
        try:
            fd = self._root_fd
            for part in parts[:-1]:
                fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                fds.append(fd)
            if not stat.S_ISREG(os.stat(parts[-1], dir_fd=fd, follow_symlinks=False).st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a regular file")
            os.link(parts[-1], name, src_dir_fd=fd, dst_dir_fd=dir_fd, follow_symlinks=False)
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
        finally:
            for fd in fds:
                os.close(fd)

    def set_inode_attrs(self, fd: int, entry: Entry) -> None:
        """Owner, extended attributes, mode, mtime, in that order: ``chown`` clears
        setuid/setgid and capabilities."""
        if self.as_root:
            os.fchown(fd, entry.uid, entry.gid)
        self.set_xattrs(fd, entry)
        os.fchmod(fd, entry.mode)
        os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))

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
        written = 0
        for chunk in self.repo.open_blob(entry.blob).iter_chunks():
            view = memoryview(chunk)
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
        self.set_inode_attrs(fd, entry)

    def set_attrs(self, entry: Entry) -> None:
        """A directory's owner, ACLs, xattrs, mode and mtime, set through a descriptor
        opened one component at a time from the staging directory (a path that fits
        PATH_MAX under the mount does not always fit under the longer staging name)."""
        try:
            fd = self._open_dir(entry.parts)
            if fd is None:
                return  # replaced by something kept from the live mount
            try:
                if self.as_root:
                    os.fchown(fd, entry.uid, entry.gid)
                names = {name for name, _ in entry.xattrs}
                for acl in ACLS:  # one inherited from above the staging directory
                    if acl not in names:
                        _drop_xattr(fd, acl)
                self.set_xattrs(fd, entry)
                os.fchmod(fd, entry.mode)
                os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
            finally:
                os.close(fd)
        except OSError as e:
            raise self.unwritable(self.path(entry.path), e) from e

    def _open_dir(self, parts: tuple[bytes, ...]) -> int | None:
        """The staging directory's ``parts`` opened without following symlinks; None when
        the last one is not a directory."""
        fd = os.open(self.base, _DIR_FLAGS)
        try:
            for i, part in enumerate(parts):
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except (NotADirectoryError, OSError) as e:
                    last = i == len(parts) - 1
                    if last and (isinstance(e, NotADirectoryError) or e.errno == errno.ELOOP):
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

    # -- entries carried over from the live mount ---------------------------------------------

    def carry_over(self, live: Path, keep: frozenset[str]) -> None:
        for rel in sorted(keep):
            parts = _keep_path(rel)
            src = self._live_source(live, parts)
            if src is None:
                continue
            try:
                self._copy_in(live, parts, src)
            except OSError as e:
                raise self.unwritable(os.path.join(self.staging, *parts), e) from e
            self.reporter.log(f"kept {'/'.join(parts)} from the live mount")

    @staticmethod
    def _live_source(live: Path, parts: tuple[str, ...]) -> Path | None:
        """The live path to keep, if it exists with only real directories above it."""
        path = live
        for i, part in enumerate(parts):
            path = path / part
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                return None
            if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
                return None
        return path

    def _copy_in(self, live: Path, parts: tuple[str, ...], src: Path) -> None:
        for i in range(1, len(parts)):
            rel = os.fsencode("/".join(parts[:i]))
            p = self.path(rel)
            if os.path.isdir(p) and not os.path.islink(p):
                continue
            remove_tree(p)
            os.mkdir(p, 0o700)
            st = os.lstat(live.joinpath(*parts[:i]))
            self.dirs.append(Entry(rel, DIR, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                                   st.st_mtime_ns, 0))
        rel = os.fsencode("/".join(parts))
        self.dirs = [d for d in self.dirs if d.path != rel and not d.path.startswith(rel + b"/")]
        dst = os.fsdecode(self.path(rel))
        remove_tree(dst)
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode):
            shutil.copytree(src, dst, symlinks=True)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        elif stat.S_ISREG(st.st_mode):
            shutil.copy2(src, dst, follow_symlinks=False)
        else:
            return
        if self.as_root:
            self._copy_owners(src, dst)

    @staticmethod
    def _copy_owners(src: Path, dst: str) -> None:
        st = os.lstat(src)
        os.lchown(dst, st.st_uid, st.st_gid)
        if stat.S_ISDIR(st.st_mode):
            for dirpath, dirnames, filenames in os.walk(src):
                for name in dirnames + filenames:
                    s = os.lstat(os.path.join(dirpath, name))
                    rel = os.path.relpath(os.path.join(dirpath, name), src)
                    os.lchown(os.path.join(dst, rel), s.st_uid, s.st_gid)
            # lchown clears setuid/setgid bits of files: copy the modes again
            for dirpath, _dirnames, filenames in os.walk(src):
                for name in filenames:
                    s = os.lstat(os.path.join(dirpath, name))
                    rel = os.path.relpath(os.path.join(dirpath, name), src)
                    if stat.S_ISREG(s.st_mode):
                        os.chmod(os.path.join(dst, rel), stat.S_IMODE(s.st_mode))
        elif stat.S_ISREG(st.st_mode):
            os.chmod(dst, stat.S_IMODE(st.st_mode))


def _drop_xattr(target: int | Path | bytes | str, name: str) -> None:
    """Remove ``name`` from an open descriptor or a path (not followed), if it is there."""
    try:
        os.removexattr(target, name, follow_symlinks=isinstance(target, int))
    except OSError as e:
        if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise


def prepare_restore(mount_dir: Path, description: dict[str, Any], repo: Any,
                    reporter: Reporter, *, keep: frozenset[str] = frozenset()
                    ) -> PreparedMountRestore:
    """Build the snapshot's tree for ``mount_dir`` in staging; the live mount is untouched.

    ``keep``: paths relative to the mount that, if present in the live mount, are copied
    into the new tree (replacing the snapshot's entry), e.g. ``.maintenance.flag``.
    Leftovers of a killed restore of this mount are cleaned up first. A missing mount is
    fine (the swap creates it); its parent directory must exist.
    Raises IntegrityError (damaged repository), RepositoryError (unknown description),
    ConfigError (bad mount or keep path), ServiceUnavailable (cannot write) — in every
    case after removing the staging directory. Progress: ``advance`` with bytes written.
    """
    ref = tree_ref(description, "restore")
    mount = resolve_mount(mount_dir, must_exist=False)
    if not mount.parent.is_dir():
        raise ConfigError(
            f"cannot restore mount {mount_dir}: its parent directory {mount.parent} does not "
            "exist; deploy the environment's code first or fix `mounts` in snapkeep.toml")
    for rel in keep:
        _keep_path(rel)
    cleanup_leftovers(mount)
    by_children = mount.is_dir() and is_mount_point(mount)
    token = new_token()
    staging = inner(mount, STAGING, token) if by_children else sibling(mount, STAGING, token)
    builder = _Builder(staging, repo, reporter)
    # By children, staging lives inside the mount: keep the mount root's mtime as it was.
    live_mtime = os.lstat(mount).st_mtime_ns if by_children else None
    try:
        os.mkdir(staging, 0o700)
    except OSError as e:
        raise builder.unwritable(staging, e) from e
    try:
        if live_mtime is not None:
            os.utime(mount, ns=(live_mtime, live_mtime))
        _drop_xattr(staging, ACLS[1])  # entries must not inherit the mount's default ACL
        root = builder.build(ref, description)
        builder.carry_over(mount, keep)
        builder.finish_dirs()
        if not by_children:
            builder.set_attrs(root)
        builder.warn_summary()
    except BaseException:
        remove_tree(staging)
        if live_mtime is not None:
            os.utime(mount, ns=(live_mtime, live_mtime))
        raise
    return PreparedMountRestore(mount, token, by_children, root, live_mtime)
