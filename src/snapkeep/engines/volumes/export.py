"""A mount snapshot as a POSIX (pax) tar stream, and the safe way back from one.

``export_tar`` streams one mount's tree (``tree.py``) as a tar: the mount root as ``./``,
then every directory, regular file (empty ones included), symlink, FIFO and hard link
(``LNKTYPE`` naming the link's first path, as GNU tar writes them) in tree order, named
relative to the mount root, with the mode (setuid/setgid/sticky included), numeric
uid/gid and mtime the tree records, and each extended attribute (POSIX ACLs included, as
their raw ``system.posix_acl_*`` values) as a pax ``SCHILY.xattr.<name>`` record, as GNU
tar ``--xattrs`` and star write them. A sparse file is written as a regular file, its holes
as zeros. The mtime goes into each member's pax header to the
nanosecond, so GNU tar and ``extract_tar`` set it exactly. Names and link targets that
are not UTF-8 are written as their raw bytes (pax ``hdrcharset=BINARY``). File contents
are streamed chunk by chunk from the repository, each chunk hash-checked as it is read
(``IntegrityError`` propagates); memory stays bounded by a chunk.

``extract_tar`` reads a tar stream (``snapshot:import``) into an existing empty directory.
The archive is untrusted: a member whose name is absolute or holds ``..``, a member below
a symlink, a hardlink to anything but a regular file extracted before it (so never to a
path outside or through a symlink), a device or other special member (a FIFO too when the
caller says so), or a name listed twice is refused with ``UnsafeArchive`` before anything
is written for it. Every entry is created by one name relative to the open descriptor of
its parent directory (opened with ``O_NOFOLLOW``, as the restore does), so nothing is ever
written through a symlink or outside the directory. That is what makes a symlink's target
harmless to the extraction, so symlinks are kept verbatim wherever they point, as a
snapshot keeps them (deployments link ``app/etc/env.php`` or ``pub/media`` to shared
storage by absolute path); the ones pointing outside the directory are returned, for the
caller to log. Modes, mtimes (to the nanosecond when the archive has them) and
``SCHILY.xattr.*`` attributes are set, directories' last so their contents cannot change
them (nor inherit a default ACL early); ownership only when running as root, before the
attributes and the mode (``chown`` clears setuid/setgid). An attribute that cannot be set
is passed to ``warn`` and left out. On a refusal or any other error, what was extracted
stays in ``dest`` for the caller to remove. A caller that takes only some members (an
uploaded import directory) passes ``accept``, asked about each member before anything is
written for it.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO

from snapkeep.engines.seams import BlobSource
from snapkeep.engines.volumes.attributes import ACLS
from snapkeep.engines.volumes.layout import DIR_FLAGS, drop_xattr, parent_dir, printable
from snapkeep.engines.volumes.tree import (
    DIR,
    FIFO,
    FILE,
    HARDLINK,
    SYMLINK,
    Entry,
    decode_tree,
    tree_ref,
)
from snapkeep.errors import ServiceUnavailable, UsageError
from snapkeep.progress import Reporter

COPY_BYTES = 1 << 20
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_FIFO_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_PAX_TIME = re.compile(r"-?[0-9]+(\.[0-9]+)?")
XATTR_PAX = "SCHILY.xattr."
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EIO)

# Asked about each member (the components of its name, "." dropped) after the checks every
# member gets: True extracts it, False skips it unread; raising UnsafeArchive refuses it.
Accept = Callable[[tarfile.TarInfo, tuple[bytes, ...]], bool]


class UnsafeArchive(UsageError):
    """A tar member that could write outside the target directory, or that is no file,
    directory or link."""


# -- export --------------------------------------------------------------------------------------

def export_tar(description: dict[str, Any], repo: BlobSource, out: BinaryIO, reporter: Reporter
               ) -> None:
    """Write the mount described by ``description`` (``manifest.mounts[m]``) to ``out`` as
    an uncompressed pax tar (see the module doc). Raises RepositoryError for a description
    this snapkeep cannot read, IntegrityError for damaged data; ``out``'s errors propagate.
    Progress: ``add_total`` with the mount's file bytes, ``advance`` as they are written."""
    ref = tree_ref(description, "export")
    reporter.add_total(int(description.get("bytes") or 0))
    counts = {DIR: 0, FILE: 0, SYMLINK: 0, FIFO: 0, HARDLINK: 0}
    with io.BufferedReader(repo.open_blob(ref), 1 << 16) as tree_stream, \
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,
                         encoding="utf-8", errors="surrogateescape") as tar:
        tar.copybufsize = COPY_BYTES  # type: ignore[attr-defined]  # typeshed lacks it
        for entry in decode_tree(tree_stream):
            info = _tar_info(entry)
            counts[entry.type] += int(entry.path != b"")
            if entry.type == FILE:
                assert entry.blob is not None
                raw: io.RawIOBase = repo.open_blob(entry.blob)
                if entry.extents is not None:
                    raw = _Expanded(raw, entry)
                content = _Progress(raw, reporter)
                tar.addfile(info, io.BufferedReader(content, COPY_BYTES))
            else:
                tar.addfile(info)
    reporter.log(f"exported {counts[FILE]} files, {counts[DIR]} directories, "
                 f"{counts[SYMLINK]} symlinks, {counts[FIFO]} FIFOs and {counts[HARDLINK]} "
                 "hard links as tar")


def _tar_info(entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(os.fsdecode(entry.path) if entry.path else ".")
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mtime = entry.mtime_ns // 1_000_000_000
    info.pax_headers = {"mtime": _pax_time(entry.mtime_ns)}
    for name, value in entry.xattrs:  # raw bytes; tarfile writes hdrcharset=BINARY if needed
        info.pax_headers[XATTR_PAX + name] = value.decode("utf-8", "surrogateescape")
    if entry.type == DIR:
        info.type = tarfile.DIRTYPE
    elif entry.type == FILE:
        info.type = tarfile.REGTYPE
        info.size = entry.size
    elif entry.type == FIFO:
        info.type = tarfile.FIFOTYPE
    elif entry.type == HARDLINK:
        info.type = tarfile.LNKTYPE
        info.linkname = os.fsdecode(entry.link or b"")
    else:
        info.type = tarfile.SYMTYPE
        info.linkname = os.fsdecode(entry.target or b"")
    return info


def _pax_time(ns: int) -> str:
    seconds, fraction = divmod(abs(ns), 1_000_000_000)
    text = f"{seconds}.{fraction:09d}".rstrip("0").rstrip(".")
    return "-" + text if ns < 0 else text


def _ns(info: tarfile.TarInfo) -> int:
    """A member's mtime in nanoseconds: the pax header's exact text when there is one."""
    text = info.pax_headers.get("mtime", "")
    if not _PAX_TIME.fullmatch(text):
        return int(info.mtime) * 1_000_000_000
    negative = text.startswith("-")
    whole, _, fraction = text.lstrip("-").partition(".")
    ns = int(whole) * 1_000_000_000 + int((fraction + "000000000")[:9])
    return -ns if negative else ns


class _Expanded(io.RawIOBase):
    """A sparse file's blob (its data extents, concatenated) read as the whole file: zeros
    in the holes."""

    def __init__(self, raw: io.RawIOBase, entry: Entry) -> None:
        self._raw = raw
        self._pieces = iter(entry.extents or ())
        self._size = entry.size
        self._pos = 0
        self._next_data, self._data_left = next(self._pieces, (entry.size, 0))

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        while self._data_left == 0 and self._pos >= self._next_data < self._size:
            self._next_data, self._data_left = next(self._pieces, (self._size, 0))
        if self._pos >= self._size:
            return 0
        if self._pos < self._next_data:  # in a hole
            n = min(len(view), self._next_data - self._pos)
            view[:n] = bytes(n)
        else:
            n = self._raw.readinto(view[: min(len(view), self._data_left)]) or 0
            if n == 0:
                return 0  # the blob ended early: the tar writer reports the short file
            self._data_left -= n
        self._pos += n
        return n


class _Progress(io.RawIOBase):
    """A blob reader that reports the bytes read."""

    def __init__(self, raw: io.RawIOBase, reporter: Reporter) -> None:
        self._raw = raw
        self._reporter = reporter

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = self._raw.readinto(buf) or 0
        self._reporter.advance(n)
        return n


# -- extract -------------------------------------------------------------------------------------

def extract_tar(src: BinaryIO, dest: Path, accept: Accept | None = None, *,
                fifos: bool = True, warn: Callable[[str], None] | None = None
                ) -> list[tuple[str, str]]:
    """Extract the tar stream ``src`` into the existing empty directory ``dest`` (see the
    module doc); return the symlinks pointing outside it, as (path, target), printable.
    Raises UnsafeArchive for a refused member, UsageError when ``dest`` is not an empty
    directory or ``src`` is not a tar, ServiceUnavailable when ``dest`` cannot be
    written. ``accept`` chooses the members extracted (default: all); ``fifos=False``
    refuses FIFO members; ``warn`` hears of attributes that could not be set."""
    try:
        names = os.listdir(dest)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise UsageError(f"cannot extract into {printable(dest)}: it is not a directory; "
                         "create an empty directory first") from e
    if names:
        raise UsageError(f"cannot extract into {printable(dest)}: it is not empty; give an "
                         "empty directory")
    root_fd = os.open(dest, DIR_FLAGS)
    try:
        drop_xattr(root_fd, ACLS[1])  # members must not inherit dest's default ACL
        extraction = _Extraction(root_fd, dest, accept, fifos, warn)
        extraction.run(src)
        return extraction.outside_links
    finally:
        os.close(root_fd)


def _parts(name: str, what: str) -> tuple[bytes, ...]:
    """The components of a member name; UnsafeArchive if it is absolute or holds ``..``."""
    raw = os.fsencode(name)
    if raw.startswith(b"/"):
        raise UnsafeArchive(f"the archive's {what} {printable(raw)!r} is an absolute path; "
                            "refusing to extract it")
    parts = tuple(p for p in raw.split(b"/") if p not in (b"", b"."))
    if b".." in parts or any(b"\0" in p for p in parts):
        raise UnsafeArchive(f"the archive's {what} {printable(raw)!r} leads out of the "
                            "directory ('..'); refusing to extract it")
    return parts


class _Extraction:
    def __init__(self, root_fd: int, dest: Path, accept: Accept | None = None,
                 fifos: bool = True, warn: Callable[[str], None] | None = None) -> None:
        self.root_fd = root_fd
        self.dest = dest
        self.accept = accept
        self.fifos = fifos
        self.warn = warn
        self.as_root = os.geteuid() == 0
        self.seen: dict[tuple[bytes, ...], str] = {(): DIR}  # extracted paths and kinds
        self.dirs: list[tuple[tuple[bytes, ...], tarfile.TarInfo]] = []
        self.outside_links: list[tuple[str, str]] = []

    def run(self, src: IO[bytes]) -> None:
        try:
            with tarfile.open(fileobj=src, mode="r|", encoding="utf-8",
                              errors="surrogateescape") as tar:
                for member in tar:
                    self.member(tar, member)
        except tarfile.TarError as e:
            raise UsageError(f"the archive cannot be read as a tar file ({e}); give the "
                             "tar written by snapshot:export") from e
        # Directories last, deepest first, so writing their contents cannot change them.
        for parts, member in reversed(self.dirs):
            self.with_parent(parts, lambda fd, name, m=member, p=parts:
                             self.set_dir(fd, name, m, p))

    def member(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = _parts(m.name, "member")
        if not (m.isdir() or m.isreg() or m.issym() or m.islnk() or (m.isfifo() and self.fifos)):
            kind = ("device" if m.ischr() or m.isblk() else "FIFO" if m.isfifo()
                    else f"special member (type {m.type!r})")
            raise UnsafeArchive(f"the archive's member {printable(os.fsencode(m.name))!r} is "
                                f"a {kind}; refusing to extract it")
        if self.accept is not None and not self.accept(m, parts):
            return
        if parts == ():
            if not m.isdir():
                raise UnsafeArchive("the archive's top-level member is not a directory; "
                                    "refusing to extract it")
            self.dirs.insert(0, (parts, m))  # the directory itself: set last
            return
        if parts in self.seen and not (m.isdir() and self.seen[parts] == DIR):
            raise UnsafeArchive(f"the archive lists {printable(b'/'.join(parts))!r} twice; "
                                "refusing to extract it")
        if m.issym():
            self.note_link_target(parts, m.linkname)
        if m.islnk():
            self.check_hardlink_target(parts, m.linkname)
        self.make_parents(parts)
        self.with_parent(parts, lambda fd, name: self.create(tar, m, parts, fd, name))

    def note_link_target(self, parts: tuple[bytes, ...], target: str) -> None:
        """Record a symlink that may point outside the directory: one that is not relative,
        within it, and with ``..`` only at its start (after a name, a ``..`` may pass
        through another link and climb further than it seems)."""
        raw = os.fsencode(target)
        if not raw:
            raise UnsafeArchive(f"the archive's symlink {printable(b'/'.join(parts))!r} has "
                                "an empty target; refusing to extract it")
        names = [p for p in raw.split(b"/") if p not in (b"", b".")]
        ups = 0
        while ups < len(names) and names[ups] == b"..":
            ups += 1
        if raw.startswith(b"/") or ups > len(parts) - 1 or b".." in names[ups:]:
            self.outside_links.append((printable(b"/".join(parts)), printable(raw)))

    def check_hardlink_target(self, parts: tuple[bytes, ...], target: str) -> None:
        if self.seen.get(_parts(target, "hardlink target")) != FILE:
            raise UnsafeArchive(
                f"the archive's hardlink {printable(b'/'.join(parts))!r} points to "
                f"{printable(os.fsencode(target))!r}, which is not a file extracted before "
                "it; refusing to extract it")

    def make_parents(self, parts: tuple[bytes, ...]) -> None:
        """Create missing parent directories (archives may list only files)."""
        for i in range(1, len(parts)):
            above = parts[:i]
            kind = self.seen.get(above)
            if kind is None:
                self.with_parent(above, lambda fd, name: os.mkdir(name, 0o755, dir_fd=fd))
                self.seen[above] = DIR
            elif kind != DIR:
                raise UnsafeArchive(
                    f"the archive puts {printable(b'/'.join(parts))!r} inside "
                    f"{printable(b'/'.join(above))!r}, which is not a directory; refusing "
                    "to extract it")

    def with_parent(self, parts: tuple[bytes, ...], action: Any) -> None:
        """Run ``action(parent_fd, name)`` in the real directory holding ``parts``."""
        try:
            with parent_dir(self.root_fd, parts) as fd:
                action(fd, parts[-1] if parts else b".")
        except OSError as e:
            raise ServiceUnavailable(
                f"cannot write {printable(os.path.join(os.fsencode(self.dest), *parts))} "
                f"while extracting: {e.strerror}; free space or fix permissions and retry"
            ) from e

    def create(self, tar: tarfile.TarFile, m: tarfile.TarInfo, parts: tuple[bytes, ...],
               dir_fd: int, name: bytes) -> None:
        mtime = _ns(m)
        if m.isdir():
            if parts not in self.seen:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
                self.seen[parts] = DIR
            self.dirs.append((parts, m))
        elif m.issym():
            os.symlink(os.fsencode(m.linkname), name, dir_fd=dir_fd)
            if self.as_root:
                os.chown(name, m.uid, m.gid, dir_fd=dir_fd, follow_symlinks=False)
            os.utime(name, ns=(mtime, mtime), dir_fd=dir_fd, follow_symlinks=False)
            self.set_xattrs(b"/proc/self/fd/%d/%s" % (dir_fd, name), m, parts)
            self.seen[parts] = "symlink"
        elif m.islnk():
            target = _parts(m.linkname, "hardlink target")
            self.with_parent(target, lambda src_fd, src_name: os.link(
                src_name, name, src_dir_fd=src_fd, dst_dir_fd=dir_fd, follow_symlinks=False))
            self.seen[parts] = "hardlink"
        elif m.isfifo():
            os.mkfifo(name, 0o600, dir_fd=dir_fd)
            fd = os.open(name, _FIFO_FLAGS, dir_fd=dir_fd)  # ours: no writer waits on it
            try:
                self.set_attrs(fd, m, parts, mtime)
            finally:
                os.close(fd)
            self.seen[parts] = FIFO
        else:
            self.write_file(tar, m, parts, dir_fd, name, mtime)
            self.seen[parts] = FILE

    def set_xattrs(self, target: int | bytes, m: tarfile.TarInfo, parts: tuple[bytes, ...]
                   ) -> None:
        """The member's ``SCHILY.xattr.*`` records on an open descriptor or a path (not
        followed); one that cannot be set goes to ``warn``."""
        follow = isinstance(target, int)
        for key, text in sorted(m.pax_headers.items()):
            if not key.startswith(XATTR_PAX) or len(key) == len(XATTR_PAX):
                continue
            name = key[len(XATTR_PAX):]
            try:
                os.setxattr(target, name, text.encode("utf-8", "surrogateescape"),
                            follow_symlinks=follow)
            except OSError as e:
                if e.errno in _DISK_ERRORS:
                    raise
                if self.warn is not None:
                    self.warn(f"warning: cannot set the extended attribute {name} on "
                              f"{printable(b'/'.join(parts)) or '.'} ({e.strerror}); "
                              "extracted without it")

    def set_attrs(self, fd: int, m: tarfile.TarInfo, parts: tuple[bytes, ...], mtime: int
                  ) -> None:
        """Owner first (``chown`` clears setuid/setgid), attributes, mode, mtime."""
        if self.as_root:
            os.fchown(fd, m.uid, m.gid)
        names = {k[len(XATTR_PAX):] for k in m.pax_headers if k.startswith(XATTR_PAX)}
        for acl in ACLS:  # dest's own, inherited from above it
            if not parts and acl not in names:
                drop_xattr(fd, acl)
        self.set_xattrs(fd, m, parts)
        os.fchmod(fd, stat.S_IMODE(m.mode))
        os.utime(fd, ns=(mtime, mtime))

    def write_file(self, tar: tarfile.TarFile, m: tarfile.TarInfo, parts: tuple[bytes, ...],
                   dir_fd: int, name: bytes, mtime: int) -> None:
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=dir_fd)
        try:
            data = tar.extractfile(m)
            assert data is not None
            while piece := data.read(COPY_BYTES):
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view):]
            self.set_attrs(fd, m, parts, mtime)
        finally:
            os.close(fd)

    def set_dir(self, dir_fd: int, name: bytes, m: tarfile.TarInfo,
                parts: tuple[bytes, ...]) -> None:
        fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
        try:
            self.set_attrs(fd, m, parts, _ns(m))
        finally:
            os.close(fd)

