"""A mount's digest: one BLAKE3 hash over its tree, so a restored copy can be proven equal.

The digest is taken over the tree's lines in tree order, each line being the entry as the
tree stores it (``encode_entry``) with the files cache's keys (``ino``, ``ctime_ns``)
removed: they describe the inode a file happened to have, not its contents or attributes.
They are cut out of the line's bytes (``canonical``), which is the same as encoding the
entry without them and costs a regular expression instead of a second JSON encoding.
Everything else — paths, types, modes, owners, mtimes, sizes, link targets and each
file's ``BlobRef`` (its chunk ids, keyed hashes of its content) — is in it. So two trees
have the same digest exactly when every entry is identical.

- At snapshot time ``TreeDigest`` hashes the lines as ``snapshot_mount`` writes them
  (no extra read); the result is the description's ``"digest"`` (``"blake3:<hex>"``).
- ``tree_digest(path, repo)`` recomputes it for a directory: the same walk, with a blob
  writer that chunks and names content exactly as the repository would but stores
  nothing (``seams.ChunkNamer.digest_writer``).
- ``checked(lines, description)`` hashes the tree lines a restore decodes as they stream
  and raises IntegrityError at the end when they do not give the recorded digest.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import blake3

from snapkeep.engines.seams import ChunkNamer
from snapkeep.engines.volumes.layout import resolve_mount
from snapkeep.engines.volumes.tree import Entry, encode_entry
from snapkeep.engines.volumes.walk import walk_entries
from snapkeep.errors import IntegrityError
from snapkeep.progress import NullReporter, Reporter
from snapkeep.repository import BlobWriter

PREFIX = "blake3:"


# The cache keys as ``encode_entry`` writes them (sorted keys, compact): never first, so
# preceded by a comma. Inside a JSON string a quote is always escaped (``\"``), so the
# bare ``,"ino":`` can only be the key itself.
_CACHE_KEYS = re.compile(rb',"(?:ctime_ns|ino)":-?[0-9]+')


def canonical(line: bytes) -> bytes:
    """A tree line without the files cache's keys."""
    return _CACHE_KEYS.sub(b"", line)


class TreeDigest:
    """The running digest of a tree's lines, fed in tree order."""

    def __init__(self) -> None:
        self._hash = blake3.blake3()

    def add_line(self, line: bytes) -> None:
        """A line as the tree stores it (``encode_entry``'s bytes)."""
        self._hash.update(canonical(line))

    def add_lines(self, lines: bytes) -> None:
        """Several whole lines at once (each ending in a newline): the same digest as
        ``add_line`` for each, as no cache key spans a newline and the hash is streamed;
        one regex and hash call per batch instead of per line."""
        self._hash.update(canonical(lines))

    def add(self, entry: Entry) -> None:
        self.add_line(encode_entry(entry))

    def hexdigest(self) -> str:
        return PREFIX + self._hash.hexdigest()


def recorded_digest(description: dict[str, Any]) -> str | None:
    """The digest a mount's description records; None for a snapshot taken before digests."""
    value = description.get("digest")
    return value if isinstance(value, str) and value.startswith(PREFIX) else None


def checked(lines: Iterable[bytes], description: dict[str, Any]) -> Iterator[bytes]:
    """The tree blob's ``lines`` unchanged (for ``decode_tree``); after the last one,
    IntegrityError if a digest is recorded and they do not give it (the tree read is not
    the one the snapshot wrote)."""
    want = recorded_digest(description)
    if want is None:
        yield from lines
        return
    digest = TreeDigest()
    for line in lines:
        digest.add_line(line)
        yield line
    if digest.hexdigest() != want:
        raise IntegrityError(
            f"the mount's file tree does not match the digest recorded when the snapshot was "
            f"taken ({want}, found {digest.hexdigest()})")


class _HashOnly:
    """What the walk needs of a repository, storing nothing: ``blob_writer`` only names
    chunks (the walk is given no files cache)."""

    def __init__(self, repo: ChunkNamer) -> None:
        self.repo = repo

    def blob_writer(self, level: int = 0) -> BlobWriter:  # nothing stored: no compression
        return self.repo.digest_writer()


def tree_digest(path: Path, repo: ChunkNamer, reporter: Reporter | None = None, *,
                owner: tuple[int, int] | None = None) -> str:
    """The digest of the directory ``path`` as a snapshot of it would record it.

    ``repo`` gives the chunker and the keyed chunk ids (``digest_writer``); nothing is
    stored. ``owner`` replaces every entry's (uid, gid), for comparing a copy restored by
    a user who cannot set owners. Raises ConfigError (no such directory) and
    ServiceUnavailable (unreadable), like ``snapshot_mount``.
    """
    digest = TreeDigest()
    for entry in walk_entries(resolve_mount(path, must_exist=True), _HashOnly(repo),
                              reporter or NullReporter()):
        if owner is not None:
            entry = dataclasses.replace(entry, uid=owner[0], gid=owner[1])
        digest.add(entry)
    return digest.hexdigest()


def owned_by(entries: Iterable[Entry], owner: tuple[int, int]) -> str:
    """The digest of ``entries`` with every (uid, gid) replaced by ``owner``."""
    digest = TreeDigest()
    for entry in entries:
        digest.add(dataclasses.replace(entry, uid=owner[0], gid=owner[1]))
    return digest.hexdigest()


def restorer_owner() -> tuple[int, int] | None:
    """None when a restore sets owners (root); else the (uid, gid) its files get."""
    return None if os.geteuid() == 0 else (os.geteuid(), os.getegid())
