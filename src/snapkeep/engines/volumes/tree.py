"""The entry model of a mount snapshot and its JSON-lines encoding (tree format 2).

A tree is one blob of UTF-8 JSON lines, one ``Entry`` per line, in **tree order**:
sorted by the path's components compared as raw bytes, so the mount root (path ``""``)
comes first, a directory comes right before its own contents, and the contents of one
directory are contiguous. Each line is a JSON object with sorted keys, no spaces and
ASCII-only escapes, ending in ``\\n``: the same tree always gives the same bytes.

Keys of one line:

- ``path``: the path relative to the mount, components joined by ``/``; ``""`` is the
  mount root itself. ``type``: ``"dir"``, ``"file"`` or ``"symlink"``.
- ``mode`` (permission bits including setuid/setgid/sticky, ``stat.S_IMODE``), ``uid``,
  ``gid``, ``mtime_ns`` (integer nanoseconds), ``size`` (bytes; 0 for directories, the
  target's length for symlinks).
- files: ``blob``, the content's ``BlobRef`` JSON (``{"size": n, "chunks": [[id, n], ...]}``);
  since format 2 also, when known, ``ino`` (inode number) and ``ctime_ns`` (status change
  time, integer nanoseconds): the files cache's keys (see ``walk``). They are omitted for
  a file whose content may not match them (changed while read, or changed too recently);
  such an entry, like every format-1 entry, simply never matches the cache.
- symlinks: ``target``, the link text exactly as stored (never resolved).

Names are bytes on Linux. A path or link target that is valid UTF-8 is stored as a JSON
string under ``path`` / ``target``; one that is not (e.g. a Latin-1 file name) is stored
as standard base64 of the raw bytes under ``path_b64`` / ``target_b64`` instead, so every
reader gets the exact bytes back and the JSON stays valid Unicode.

Format 1 differs only in never having ``ino``/``ctime_ns``, so one decoder reads both.

Decoding validates each line (known type, a relative path without ``.``/``..``/empty
components, tree order) and raises ``IntegrityError`` on anything else: a restore never
writes outside the mount, whatever the tree says.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from snapkeep.errors import IntegrityError, RepositoryError
from snapkeep.repository.blobs import BlobRef

TREE_FORMAT = 2
READABLE_FORMATS = frozenset({1, 2})
DIR, FILE, SYMLINK = "dir", "file", "symlink"
TYPES = frozenset({DIR, FILE, SYMLINK})


@dataclass(frozen=True)
class Entry:
    path: bytes  # relative to the mount, b"/"-separated; b"" is the mount root
    type: str
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    size: int
    target: bytes | None = None  # symlinks only
    blob: BlobRef | None = None  # files only
    ino: int | None = None  # files only, the files cache's keys; None: never matches
    ctime_ns: int | None = None

    @property
    def parts(self) -> tuple[bytes, ...]:
        return tuple(self.path.split(b"/")) if self.path else ()


def sort_key(path: bytes) -> tuple[bytes, ...]:
    """The tree order of a path (components as raw bytes)."""
    return tuple(path.split(b"/")) if path else ()


def _put_bytes(obj: dict[str, Any], key: str, value: bytes) -> None:
    try:
        obj[key] = value.decode("utf-8")
    except UnicodeDecodeError:
        obj[key + "_b64"] = base64.b64encode(value).decode("ascii")


def _get_bytes(obj: dict[str, Any], key: str) -> bytes | None:
    if key in obj:
        value = obj[key]
        if not isinstance(value, str):
            raise ValueError(f"{key} is not a string")
        return value.encode("utf-8")
    if key + "_b64" in obj:
        return base64.b64decode(obj[key + "_b64"], validate=True)
    return None


def encode_entry(entry: Entry) -> bytes:
    obj: dict[str, Any] = {
        "type": entry.type, "mode": entry.mode, "uid": entry.uid, "gid": entry.gid,
        "mtime_ns": entry.mtime_ns, "size": entry.size,
    }
    _put_bytes(obj, "path", entry.path)
    if entry.type == SYMLINK:
        _put_bytes(obj, "target", entry.target or b"")
    if entry.type == FILE:
        obj["blob"] = (entry.blob or BlobRef(0, ())).to_json()
        if entry.ino is not None and entry.ctime_ns is not None:
            obj["ino"], obj["ctime_ns"] = entry.ino, entry.ctime_ns
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii") + b"\n"


def encode_tree(entries: Iterable[Entry]) -> bytes:
    """All entries as one tree blob (entries are put in tree order first)."""
    return b"".join(encode_entry(e) for e in sorted(entries, key=lambda e: sort_key(e.path)))


def _check_path(path: bytes) -> None:
    if path == b"":
        return
    for part in path.split(b"/"):
        if part in (b"", b".", b"..") or b"\0" in part:
            raise ValueError(f"unsafe path {path!r}")


def decode_entry(line: bytes) -> Entry:
    """One line back into an ``Entry``; ``ValueError`` if it is not a valid entry."""
    try:
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise ValueError("not an object")
        path = _get_bytes(obj, "path")
        if path is None:
            raise ValueError("no path")
        _check_path(path)
        kind = obj["type"]
        if kind not in TYPES:
            raise ValueError(f"unknown type {kind!r}")
        ints = [obj[k] for k in ("mode", "uid", "gid", "mtime_ns", "size")]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            raise ValueError("a numeric field is not an integer")
        mode, uid, gid, mtime_ns, size = ints
        if not 0 <= mode <= 0o7777 or size < 0:
            raise ValueError("mode or size out of range")
        target = blob = ino = ctime_ns = None
        if kind == SYMLINK:
            target = _get_bytes(obj, "target")
            if not target or b"\0" in target:
                raise ValueError("symlink without a valid target")
        elif kind == FILE:
            blob = BlobRef.from_json(obj["blob"])
            if blob.size != size or sum(n for _, n in blob.chunks) != size:
                raise ValueError("file size does not match its content")
            if "ino" in obj or "ctime_ns" in obj:
                ino, ctime_ns = obj["ino"], obj["ctime_ns"]
                if not all(isinstance(v, int) and not isinstance(v, bool)
                           for v in (ino, ctime_ns)) or ino < 0:
                    raise ValueError("ino or ctime_ns is not a valid integer")
        if path == b"" and kind != DIR:
            raise ValueError("the mount root is not a directory")
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise ValueError(f"invalid tree entry: {e}") from e
    return Entry(path, kind, mode, uid, gid, mtime_ns, size, target, blob, ino, ctime_ns)


def decode_tree(stream: IO[bytes]) -> Iterator[Entry]:
    """Entries of a tree blob in tree order, streamed line by line.

    Raises ``IntegrityError`` on a malformed line, entries out of order or duplicated, an
    entry whose parent is not a directory listed before it, or a tree without its root.
    """
    prev: tuple[bytes, ...] | None = None
    dirs: list[tuple[bytes, ...]] = []  # the chain of directories enclosing the position
    for lineno, line in enumerate(stream, 1):
        try:
            entry = decode_entry(line)
        except ValueError as e:
            raise IntegrityError(
                f"the snapshot's file tree is damaged at line {lineno}: {e}") from e
        key = entry.parts
        if prev is None and key != ():
            raise IntegrityError("the snapshot's file tree does not start with the mount root")
        if prev is not None and key <= prev:
            raise IntegrityError(
                f"the snapshot's file tree is out of order at line {lineno} ({entry.path!r})")
        while dirs and dirs[-1] != key[: len(dirs[-1])]:
            dirs.pop()
        if prev is not None and (not dirs or dirs[-1] != key[:-1]):
            raise IntegrityError(
                f"the snapshot's file tree lists {entry.path!r} without its parent directory "
                "(its parent is missing or is not a directory, e.g. a symlink)")
        if entry.type == DIR:
            dirs.append(key)
        prev = key
        yield entry
    if prev is None:
        raise IntegrityError("the snapshot's file tree is empty (no mount root)")


def tree_ref(description: dict[str, Any], doing: str) -> BlobRef:
    """The tree blob of a mount's description, or RepositoryError when this snapkeep cannot
    read it (``doing``: "restore", "export")."""
    try:
        if description["kind"] != "volume" or description["format"] not in READABLE_FORMATS:
            raise ValueError(f"kind {description['kind']!r}, format {description['format']!r}")
        return BlobRef.from_json(description["tree"])
    except (KeyError, TypeError, ValueError) as e:
        raise RepositoryError(
            f"the snapshot's mount description is not a volume tree this snapkeep can {doing} "
            f"({e}); use the snapkeep version that created the snapshot") from e
