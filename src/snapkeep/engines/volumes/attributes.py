"""Setting a restored entry's attributes: owner (as root only), extended attributes, mode
and mtime, in that order per inode (``chown`` clears setuid/setgid and file capabilities).
An extended attribute the target filesystem or user refuses is a ``warning:`` line, not a
failure; the first ``WARNINGS_SHOWN`` are logged one by one, the rest counted."""

from __future__ import annotations

import errno
import os
import threading

from snapkeep.engines.volumes.layout import drop_xattr, printable
from snapkeep.engines.volumes.tree import Entry
from snapkeep.progress import Reporter

ACLS = ("system.posix_acl_access", "system.posix_acl_default")
# Errors of setting an attribute that are the disk's fault, not the attribute's.
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EIO)
WARNINGS_SHOWN = 20  # attribute warnings logged one by one; the rest are counted


class Attributes:
    """Sets entries' attributes for one restore (thread-safe: the writer threads call it)."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.as_root = os.geteuid() == 0
        self._warn_lock = threading.Lock()
        self.unset = 0  # extended attributes that could not be set

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
                    self.unset += 1
                    shown = self.unset <= WARNINGS_SHOWN
                if shown:
                    self.reporter.log(
                        f"warning: cannot set the extended attribute {name} on "
                        f"{printable(entry.path) or '(the mount root)'} ({e.strerror}); "
                        "restored without it")

    def warn_summary(self) -> None:
        if self.unset > WARNINGS_SHOWN:
            self.reporter.log(f"warning: {self.unset - WARNINGS_SHOWN} more extended "
                              "attributes could not be set (see the warnings above)")

    def set_inode(self, fd: int, entry: Entry) -> None:
        """A file's or FIFO's owner, extended attributes, mode, mtime."""
        if self.as_root:
            os.fchown(fd, entry.uid, entry.gid)
        self.set_xattrs(fd, entry)
        os.fchmod(fd, entry.mode)
        os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))

    def set_dir(self, fd: int, entry: Entry) -> None:
        """A directory's owner, ACLs, extended attributes, mode and mtime; an ACL it
        inherited from above the staging directory, and the snapshot lacks, removed."""
        if self.as_root:
            os.fchown(fd, entry.uid, entry.gid)
        names = {name for name, _ in entry.xattrs}
        for acl in ACLS:
            if acl not in names:
                drop_xattr(fd, acl)
        self.set_xattrs(fd, entry)
        os.fchmod(fd, entry.mode)
        os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
