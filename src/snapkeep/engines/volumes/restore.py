"""Restoring a mount, step one: build the complete new tree in a staging directory.

``prepare_restore`` writes every entry of the snapshot's tree into a hidden staging
directory on the mount's filesystem (see ``layout``), reading each file from the
repository with every chunk hash-checked, then sets directory modes and mtimes deepest
first (so read-only directories and mtimes survive their own contents being written).
The tree is untrusted data: ``decode_tree`` refuses unsafe paths, and entries are created
relative to directory descriptors opened with ``O_NOFOLLOW`` (``Builder.materialize``),
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
stay unallocated; any other file is allocated whole first (``staging.presize``). Each
writer decrypts into one reused buffer (``BlobReader.iter_views``), writes from it, and
starts the file's writeback when done, so the swap's ``os.sync()`` has little left to do.

A file the live mount already has exactly as the snapshot records it (content, mode,
owner, mtime, size, attributes; one link, no holes) is hard-linked into staging instead
of written, once its content is proven equal by the repository's keyed hash, and checked
again at the cut-over, where any change since has it rewritten (``linking``).

Any failure (damaged chunk, full disk, interrupt) removes the staging directory and
re-raises: the live mount is never touched before ``PreparedMountRestore.swap``.

Where: the entries are built by ``staging.Builder``, their attributes set by
``attributes.Attributes``, the kept live paths copied by ``keep.carry_over``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from snapkeep.engines.seams import BlobSource
from snapkeep.engines.volumes.attributes import ACLS
from snapkeep.engines.volumes.keep import carry_over, keep_path
from snapkeep.engines.volumes.layout import (
    STAGING,
    drop_xattr,
    inner,
    is_mount_point,
    new_token,
    remove_tree,
    resolve_mount,
    sibling,
)
from snapkeep.engines.volumes.staging import Builder
from snapkeep.engines.volumes.swap import PreparedMountRestore, cleanup_leftovers
from snapkeep.engines.volumes.tree import tree_ref
from snapkeep.errors import ConfigError
from snapkeep.progress import Reporter


def prepare_restore(mount_dir: Path, description: dict[str, Any], repo: BlobSource,
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
        keep_path(rel)
    cleanup_leftovers(mount)
    by_children = mount.is_dir() and is_mount_point(mount)
    token = new_token()
    staging = inner(mount, STAGING, token) if by_children else sibling(mount, STAGING, token)
    live = mount if mount.is_dir() and not mount.is_symlink() else None
    builder = Builder(staging, repo, reporter, live)
    builder.root_attrs = not by_children  # by children, the root's are set by the swap
    # By children, staging lives inside the mount: keep the mount root's mtime as it was.
    live_mtime = os.lstat(mount).st_mtime_ns if by_children else None
    try:
        os.mkdir(staging, 0o700)
    except OSError as e:
        raise builder.unwritable(staging, e) from e
    try:
        if live_mtime is not None:
            os.utime(mount, ns=(live_mtime, live_mtime))
        drop_xattr(staging, ACLS[1])  # entries must not inherit the mount's default ACL
        root = builder.build(ref, description)
        carry_over(builder, mount, keep)
        builder.finish_dirs()
        if not by_children:
            builder.set_attrs(root)
        builder.attrs.warn_summary()
        if builder.linked:
            size = sum(item.entry.size for item in builder.linked.values())
            reporter.log(f"{len(builder.linked)} files of {mount} ({size / 2**20:.1f} MiB) "
                         "are unchanged since the snapshot: linked, not rewritten")
    except BaseException:
        remove_tree(staging)
        if live_mtime is not None:
            os.utime(mount, ns=(live_mtime, live_mtime))
        raise
    return PreparedMountRestore(mount, token, by_children, root, live_mtime,
                                builder if builder.linked else None)
