"""Snapshotting a mount: its walk (``walk.py``) stored as a tree blob, with its digest.

**Files cache.** Given the previous snapshot of the same mount (``parent``), its tree is
loaded into a dict (path → cache keys and the line's JSON object; ``tree.cache_lines``) and
a regular file whose path, inode, size, mtime and ctime all equal the parent entry's is
not opened: the parent's content ``BlobRef`` is reused (its fields checked only then: a
bad line costs a read of its own file), so re-snapshotting an unchanged tree costs one
``lstat`` per entry. The parent's line itself becomes the new tree's line when it is of
the current format and the file's mode and owner are unchanged (``Walk.line``): it is
byte for byte what encoding the entry would give. The ctime
cannot be set by users, so a file replaced or rewritten with its size and mtime restored
still misses the cache. Two guards keep a stale blob from being reused:

- a file that changed while it was read is recorded without cache keys;
- so is a file whose ctime lies within ``walk.RACY_WINDOW_NS`` before the moment it was
  read ("racily clean", as git calls it): filesystems stamp times from a coarse clock, so
  a write landing in the same clock tick right after the read would leave size, mtime and
  ctime unchanged. Such a file is simply read again by the next snapshot.

A parent tree that cannot be read or decoded is logged and ignored (every file is read);
a bad cache never fails a snapshot.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from snapkeep.engines.seams import BlobSource, SnapshotWriter
from snapkeep.engines.volumes.digest import TreeDigest
from snapkeep.engines.volumes.layout import DIR_FLAGS, printable, resolve_mount
from snapkeep.engines.volumes.tree import FILE_KEYS, READABLE_FORMATS, TREE_FORMAT, cache_lines
from snapkeep.engines.volumes.walk import Cached, Walk
from snapkeep.errors import ConfigError, SnapkeepError
from snapkeep.progress import Reporter
from snapkeep.repository import BlobRef

TREE_BATCH = 1 << 16  # bytes of tree lines per write to the tree's blob writer
CACHE_BATCH = 1 << 20  # bytes of parent tree lines decoded by one json.loads


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


def _load_cache(parent: dict[str, Any] | None, repo: BlobSource, reporter: Reporter
                ) -> dict[bytes, Cached]:
    """The parent tree's cacheable files; empty (with a log line) if it cannot be read."""
    if parent is None:
        return {}
    cache: dict[bytes, Cached] = {}
    try:
        if parent.get("kind") != "volume" or parent.get("format") not in READABLE_FORMATS:
            raise ValueError(f"kind {parent.get('kind')!r}, format {parent.get('format')!r}")
        ref = BlobRef.from_json(parent["tree"])
        # a line of this format can be taken over verbatim (Walk.line); older ones re-encoded
        current = parent["format"] == TREE_FORMAT
        with io.BufferedReader(repo.open_blob(ref), 1 << 16) as stream:
            while lines := stream.readlines(CACHE_BATCH):
                for line, found in zip(lines, cache_lines(lines), strict=True):
                    if found is None:
                        continue
                    path, obj = found
                    verbatim = (current and obj.keys() <= FILE_KEYS and line.endswith(b"\n")
                                and not ("path" in obj and "path_b64" in obj))
                    cache[path] = (obj["ino"], obj["size"], obj["mtime_ns"], obj["ctime_ns"],
                                   obj, line if verbatim else None)
    except (SnapkeepError, OSError, KeyError, TypeError, ValueError, AttributeError) as e:
        reporter.log(f"the previous snapshot's file list cannot be used ({e}); "
                     "reading every file")
        return {}
    return cache


def snapshot_mount(mount_dir: Path, repo: SnapshotWriter, reporter: Reporter, *,
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
    walk = Walk(root, repo, reporter, frozenset(_normalize(p) for p in exclude), cache)
    try:
        root_fd = os.open(root, DIR_FLAGS)
    except OSError as e:
        raise walk.unreadable(b"", e) from e
    digest = TreeDigest()
    try:
        tree_writer = repo.blob_writer()
        batch: list[bytes] = []  # lines written ~64 KiB at a time: one chunker call each
        held = 0
        for entry in walk.entries(root_fd):
            line = walk.line(entry)
            batch.append(line)
            held += len(line)
            if held >= TREE_BATCH:
                data = b"".join(batch)
                digest.add_lines(data)
                tree_writer.write(data)
                batch, held = [], 0
        data = b"".join(batch)
        digest.add_lines(data)
        tree_writer.write(data)
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
