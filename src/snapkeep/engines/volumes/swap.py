"""Restoring a mount, step two: the cut-over, its undo, its commit, and crash recovery.

A normal mount is swapped with two adjacent renames in its parent directory: the live
mount becomes ``.<name>.snapkeep-old-<t>`` and the staging directory takes its name.
Whatever holds the mount's name is moved aside that way — a directory full of other
files, or a regular file or symlink put in its place (``layout.restore_path``) — and a
missing mount is simply created; a rollback renames it back.
A mount that is a mount point cannot be renamed, so its *children* are swapped: all of
them move into ``<mount>/.snapkeep-moving-<t>`` (renamed ``-old-`` once complete), then
the staging directory's children move up, then the mount root's mode, owner and mtime are
set. Every step is a rename within one filesystem, so nothing is copied during the swap.

Staging may hold hard links to live files that were unchanged (``linking``): ``swap``
first rewrites from the repository any of them that changed since they were proven, then
renames. A linked inode is in the previous tree and the new one at once; every undo and
cleanup here only renames and unlinks (``remove_tree``), so it stays as it was.

``cleanup_leftovers`` turns any state a killed restore can leave back into "the previous
tree is live, no work dirs" — except a swap that completed and was not yet committed,
whose kept ``-old-`` tree is left alone (only ``finish``/``rollback`` decide its fate).
"""

from __future__ import annotations

import os
from pathlib import Path

from snapkeep.engines.volumes.layout import (
    MOVING,
    OLD,
    STAGING,
    TRASH,
    fsync_dir,
    inner,
    is_inner_name,
    parse_inner,
    parse_sibling,
    remove_tree,
    restore_path,
    sibling,
)
from snapkeep.engines.volumes.staging import Builder
from snapkeep.engines.volumes.tree import Entry
from snapkeep.errors import ServiceUnavailable
from snapkeep.faults import crash_point


def _move_children(src: Path, dst: Path) -> None:
    """Rename every child of ``src`` (except our work dirs) into ``dst``."""
    for name in sorted(os.listdir(src)):
        if not is_inner_name(name):
            os.rename(src / name, dst / name)


def _set_root_attrs(path: Path, mode: int, uid: int, gid: int, mtime_ns: int) -> None:
    if os.geteuid() == 0:
        os.lchown(path, uid, gid)
    os.chmod(path, mode)
    os.utime(path, ns=(mtime_ns, mtime_ns))


class PreparedMountRestore:
    """A staged restore of one mount. Call ``swap`` then ``finish`` or ``rollback``;
    or ``abort`` instead of ``swap``. Each method is idempotent in its final state."""

    def __init__(self, mount: Path, token: str, by_children: bool, root: Entry,
                 live_mtime_ns: int | None = None, linked: Builder | None = None) -> None:
        self.mount = mount
        self._linked = linked  # staged links to live files, checked again by ``swap``
        self._live_mtime_ns = live_mtime_ns  # by children: the mount root's mtime to keep
        self.by_children = by_children
        self._token = token
        self._root = root
        self._place = inner if by_children else sibling
        self.staging = self._place(mount, STAGING, token)
        self._state = "prepared"
        self._had_live = False
        self._old_root: tuple[int, int, int, int] | None = None

    def _dir(self, kind: str) -> Path:
        return self._place(self.mount, kind, self._token)

    def _fail(self, what: str, e: OSError) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"cannot {what} mount {self.mount}: {e.strerror}; run the restore again "
            "(snapkeep cleans up the interrupted attempt first)")

    # -- the cut-over ------------------------------------------------------------------------

    def swap(self) -> None:
        """Afterwards ``mount`` holds exactly the snapshot's contents (plus kept entries)."""
        if self._state == "swapped":
            return
        if self._state != "prepared":
            raise RuntimeError(f"swap() after {self._state}")
        if self._linked is not None:
            try:
                n = self._linked.recheck()  # the app is paused: nothing changes them now
            except OSError as e:
                raise self._fail("check the linked files of the restored", e) from e
            if n:
                self._linked.reporter.log(
                    f"{n} linked files of {self.mount} changed before the cut-over: "
                    "rewritten from the snapshot")
            crash_point("volumes.rechecked")
        os.sync()  # the staged data is durable before it becomes the live tree
        try:
            if self.by_children:
                self._swap_children()
            else:
                self._swap_whole()
        except OSError as e:
            raise self._fail("swap in the restored", e) from e
        self._state = "swapped"

    def _swap_whole(self) -> None:
        old = self._dir(OLD)
        self._had_live = os.path.lexists(self.mount)
        if self._had_live:
            os.rename(self.mount, old)
        try:
            os.rename(self.staging, self.mount)
        except OSError:
            if self._had_live:
                os.rename(old, self.mount)
            raise
        fsync_dir(self.mount.parent)

    def _swap_children(self) -> None:
        st = os.lstat(self.mount)
        self._old_root = (st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime_ns)
        moving = self._dir(MOVING)
        os.mkdir(moving, 0o700)
        _move_children(self.mount, moving)
        os.rename(moving, self._dir(OLD))
        self._had_live = True
        _move_children(self.staging, self.mount)
        os.rmdir(self.staging)
        r = self._root
        _set_root_attrs(self.mount, r.mode, r.uid, r.gid, r.mtime_ns)
        fsync_dir(self.mount)

    # -- after the cut-over ------------------------------------------------------------------

    def rollback(self) -> None:
        """After ``swap``: put the previous contents back. Before it: same as ``abort``."""
        if self._state in ("prepared", "aborted"):
            self.abort()
            return
        if self._state == "rolled back":
            return
        if self._state != "swapped":
            raise RuntimeError(f"rollback() after {self._state}")
        trash = self._dir(TRASH)
        try:
            if self.by_children:
                staging = self._dir(STAGING)
                os.mkdir(staging, 0o700)
                _move_children(self.mount, staging)
                os.rename(staging, trash)
                old = self._dir(OLD)
                _move_children(old, self.mount)
                os.rmdir(old)
            else:
                os.rename(self.mount, trash)
                if self._had_live:
                    os.rename(self._dir(OLD), self.mount)
                fsync_dir(self.mount.parent)
        except OSError as e:
            raise self._fail("roll back the restore of", e) from e
        self._state = "rolled back"
        remove_tree(trash)
        if self.by_children:
            assert self._old_root is not None
            _set_root_attrs(self.mount, *self._old_root)

    def finish(self) -> None:
        """Commit after ``swap``: delete the kept previous contents."""
        if self._state == "finished":
            return
        if self._state != "swapped":
            raise RuntimeError(f"finish() after {self._state}")
        self._state = "finished"
        if self._had_live:
            trash = self._dir(TRASH)
            os.rename(self._dir(OLD), trash)
            remove_tree(trash)
        if self.by_children:
            os.utime(self.mount, ns=(self._root.mtime_ns, self._root.mtime_ns))

    def abort(self) -> None:
        """Before ``swap``: delete the staging directory; the mount was never touched."""
        if self._state == "aborted":
            return
        if self._state != "prepared":
            raise RuntimeError(f"abort() after {self._state}; use rollback()")
        remove_tree(self.staging)
        if self._live_mtime_ns is not None:
            os.utime(self.mount, ns=(self._live_mtime_ns, self._live_mtime_ns))
        self._state = "aborted"


def cleanup_leftovers(mount_dir: Path) -> None:
    """Undo what a killed restore of ``mount_dir`` left behind; idempotent.

    Removes staging and trash dirs; if the mount is missing but a kept ``-old-`` tree
    exists (killed between the two renames), renames the most recently renamed one back.
    Inside a mount point, moves half-swapped children back the same way. Never deletes
    anything else. Must not run while a restore of the same mount is in progress.
    """
    mount = restore_path(mount_dir)
    parent = mount.parent
    if not parent.is_dir():
        return
    olds: list[Path] = []
    for name in sorted(os.listdir(parent)):
        parsed = parse_sibling(mount.name, name)
        if parsed is None:
            continue
        kind, _token = parsed
        if kind in (STAGING, TRASH):
            remove_tree(parent / name)
        elif kind == OLD:  # whatever the mount was: a directory, or a file or link in its place
            olds.append(parent / name)
    if not os.path.lexists(mount) and olds:
        newest = max(olds, key=lambda p: os.lstat(p).st_ctime_ns)
        os.rename(newest, mount)
        fsync_dir(parent)
    if mount.is_dir() and not mount.is_symlink():
        _cleanup_inner(mount)


def _cleanup_inner(mount: Path) -> None:
    found: dict[str, set[str]] = {}
    for name in os.listdir(mount):
        parsed = parse_inner(name)
        if parsed is not None and (mount / name).is_dir() and not (mount / name).is_symlink():
            found.setdefault(parsed[1], set()).add(parsed[0])
    for token, kinds in found.items():
        def at(kind: str, token: str = token) -> Path:
            return inner(mount, kind, token)

        if MOVING in kinds:  # killed while moving the previous children out
            _move_children(at(MOVING), mount)
            os.rmdir(at(MOVING))
        if OLD in kinds and STAGING in kinds:  # killed while moving the new children in
            _move_children(mount, at(STAGING))
            _move_children(at(OLD), mount)
            os.rmdir(at(OLD))
        elif OLD in kinds and TRASH in kinds:  # killed while rolling back
            _move_children(at(OLD), mount)
            os.rmdir(at(OLD))
        for kind in (STAGING, TRASH):
            if kind in kinds:
                remove_tree(at(kind))


def cutover_record(p: PreparedMountRestore) -> dict[str, object]:
    """What ``recover_cutover`` needs to settle this mount's cut-over after a crash.

    Take it after ``prepare_restore`` and before ``swap``; the caller keeps it durable
    (a journal) until ``finish`` or ``rollback`` has returned.
    """
    return {"mount": str(p.mount), "token": p._token, "by_children": p.by_children,
            "had_live": os.path.lexists(p.mount)}


def recover_cutover(record: dict[str, object], keep_new: bool) -> None:
    """Settle a cut-over interrupted by a killed process, from its ``cutover_record``.

    ``keep_new``: the restore had swapped everything in, so finish it (delete the kept
    previous tree). Otherwise put the previous tree back if this mount was swapped, and
    remove the new one. Idempotent; any other work dirs are cleaned up as well.
    """
    mount = Path(str(record["mount"]))
    token = str(record["token"])
    place = inner if record["by_children"] else sibling
    staging, old, trash = (place(mount, k, token) for k in (STAGING, OLD, TRASH))
    swapped = not os.path.lexists(staging)  # the swap consumes the staging dir
    cleanup_leftovers(mount)  # half-done renames back to a whole state; work dirs removed
    if keep_new:
        if os.path.lexists(old):
            os.rename(old, trash)
            remove_tree(trash)
        return
    if not swapped:
        return  # this mount was never touched
    if record["by_children"]:
        if os.path.isdir(old):
            os.mkdir(trash, 0o700)
            _move_children(mount, trash)
            _move_children(old, mount)
            os.rmdir(old)
            remove_tree(trash)
        return
    if record["had_live"] and not os.path.lexists(old):
        return  # already rolled back (the kept previous tree is live again)
    if os.path.lexists(mount):
        os.rename(mount, trash)
    if os.path.lexists(old):
        os.rename(old, mount)
    fsync_dir(mount.parent)
    remove_tree(trash)
