"""The entry model of a mount snapshot and its JSON-lines encoding (tree format 3).

A tree is one blob of UTF-8 JSON lines, one ``Entry`` per line, in **tree order**:
sorted by the path's components compared as raw bytes, so the mount root (path ``""``)
comes first, a directory comes right before its own contents, and the contents of one
directory are contiguous. Each line is a JSON object with sorted keys, no spaces and
ASCII-only escapes, ending in ``\\n``: the same tree always gives the same bytes.

Keys of one line:

- ``path``: the path relative to the mount, components joined by ``/``; ``""`` is the
  mount root itself. ``type``: ``"dir"``, ``"file"``, ``"symlink"``, and since format 3
  ``"fifo"`` and ``"hardlink"``.
- ``mode`` (permission bits including setuid/setgid/sticky, ``stat.S_IMODE``), ``uid``,
  ``gid``, ``mtime_ns`` (integer nanoseconds), ``size`` (bytes; the logical size of a
  file, 0 for directories and FIFOs, the target's length for symlinks).
- files: ``blob``, the content's ``BlobRef`` JSON (``{"size": n, "chunks": [[id, n], ...]}``);
  since format 2 also, when known, ``ino`` (inode number) and ``ctime_ns`` (status change
  time, integer nanoseconds): the files cache's keys (see ``walk``). They are omitted for
  a file whose content may not match them (changed while read, or changed too recently);
  such an entry, like every format-1 entry, simply never matches the cache. ``ino`` and
  ``ctime_ns`` are the only fields that depend on more than the tree's content.
- sparse files (format 3): ``extents``, ``[[offset, length], ...]``, the file's data
  extents in increasing order, separated by holes; the blob holds only their bytes,
  concatenated (its size is the extents' total, less than ``size``); the rest of the file
  is holes. Absent for a file without holes.
- symlinks: ``target``, the link text exactly as stored (never resolved).
- hard links (format 3): a file whose inode was already stored under an earlier path of
  the tree is a ``"hardlink"`` entry whose ``link`` is that first path (by path, never by
  inode number, so the same tree gives the same bytes). It carries the inode's
  mode/owner/mtime/size as seen, no blob and no xattrs: those belong to the first entry.
- extended attributes (format 3): ``xattrs``, an object ``{name: base64 value}`` (sorted
  by name, like every key) on dirs, files, symlinks and FIFOs that have any; POSIX ACLs
  are the ``system.posix_acl_access`` / ``system.posix_acl_default`` attributes.

Names are bytes on Linux. A path, link target or hard link's first path that is valid
UTF-8 is stored as a JSON string under ``path`` / ``target`` / ``link``; one that is not
(e.g. a Latin-1 file name) is stored as standard base64 of the raw bytes under
``path_b64`` / ``target_b64`` / ``link_b64`` instead, so every reader gets the exact
bytes back and the JSON stays valid Unicode. Attribute names must be UTF-8.

Format 1 differs only in never having ``ino``/``ctime_ns``, format 2 in having none of the
format-3 types and keys, so one decoder reads all three.

Decoding validates each line (known type, a relative path without ``.``/``..``/empty
components, tree order, a hard link naming an earlier path) and raises ``IntegrityError``
on anything else: a restore never writes outside the mount, whatever the tree says.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from snapkeep.errors import IntegrityError, RepositoryError
from snapkeep.repository.blobs import BlobRef

TREE_FORMAT = 3
READABLE_FORMATS = frozenset({1, 2, 3})
DIR, FILE, SYMLINK, FIFO, HARDLINK = "dir", "file", "symlink", "fifo", "hardlink"
TYPES = frozenset({DIR, FILE, SYMLINK, FIFO, HARDLINK})
XATTR_TYPES = frozenset({DIR, FILE, SYMLINK, FIFO})  # hard links share their first's inode

Xattrs = tuple[tuple[str, bytes], ...]  # (name, value), sorted by name
Extents = tuple[tuple[int, int], ...]  # (offset, length) of each data extent


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
    link: bytes | None = None  # hard links only: the path of the group's first file
    xattrs: Xattrs = ()
    extents: Extents | None = None  # sparse files only; None: no holes

    @property
    def parts(self) -> tuple[bytes, ...]:
        return tuple(self.path.split(b"/")) if self.path else ()

    @property
    def stored_size(self) -> int:
        """The bytes of the file's blob: the data extents' total for a sparse file."""
        return sum(n for _, n in self.extents) if self.extents is not None else self.size


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
    if entry.type == HARDLINK:
        _put_bytes(obj, "link", entry.link or b"")
    if entry.type == FILE:
        obj["blob"] = (entry.blob or BlobRef(0, ())).to_json()
        if entry.ino is not None and entry.ctime_ns is not None:
            obj["ino"], obj["ctime_ns"] = entry.ino, entry.ctime_ns
        if entry.extents is not None:
            obj["extents"] = [[offset, length] for offset, length in entry.extents]
    if entry.xattrs and entry.type in XATTR_TYPES:
        obj["xattrs"] = {name: base64.b64encode(value).decode("ascii")
                         for name, value in entry.xattrs}
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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decode_xattrs(raw: Any) -> Xattrs:
    if not isinstance(raw, dict) or not raw:
        raise ValueError("xattrs is not a non-empty object")
    out = []
    for name, value in sorted(raw.items()):
        if not name or "\0" in name or not isinstance(value, str):
            raise ValueError(f"invalid extended attribute {name!r}")
        out.append((name, base64.b64decode(value, validate=True)))
    return tuple(out)


def _decode_extents(raw: Any, size: int) -> Extents:
    """Data extents in order, each followed by a hole, within ``size``, with a hole at all."""
    if not isinstance(raw, list):
        raise ValueError("extents is not a list")
    out: list[tuple[int, int]] = []
    end = -1
    for pair in raw:
        if not (isinstance(pair, list) and len(pair) == 2 and all(_is_int(v) for v in pair)):
            raise ValueError("an extent is not [offset, length]")
        offset, length = pair
        if offset <= end or offset < 0 or length <= 0 or offset + length > size:
            raise ValueError("extents overlap, touch, are empty or pass the file's size")
        out.append((offset, length))
        end = offset + length
    if sum(n for _, n in out) >= size:
        raise ValueError("a sparse file's extents leave no hole")
    return tuple(out)


def file_content(obj: dict[str, Any], size: int) -> tuple[BlobRef, Extents | None]:
    """A decoded file line's blob and extents, checked against each other and ``size``;
    ValueError (or KeyError, TypeError) if they are not valid."""
    blob = BlobRef.from_json(obj["blob"])
    extents = _decode_extents(obj["extents"], size) if "extents" in obj else None
    stored = sum(n for _, n in extents) if extents is not None else size
    if blob.size != stored or sum(n for _, n in blob.chunks) != stored:
        raise ValueError("file size does not match its content")
    return blob, extents


def decode_xattrs(obj: dict[str, Any]) -> Xattrs:
    """A decoded line's extended attributes (``()`` if it has none); ValueError if invalid."""
    return _decode_xattrs(obj["xattrs"]) if "xattrs" in obj else ()


# The keys a file line of the current format may have: a line with only these, written by
# ``encode_entry`` of this format, is what ``encode_entry`` gives for the same entry again.
FILE_KEYS = frozenset({"blob", "ctime_ns", "extents", "gid", "ino", "mode", "mtime_ns", "path",
                       "path_b64", "size", "type", "uid", "xattrs"})


_DECODER = json.JSONDecoder()


def cache_line(line: bytes) -> tuple[bytes, dict[str, Any]] | None:
    """For the files cache: a line's path and its JSON object if it is a file with cache
    keys (``ino``, ``ctime_ns``), else None; ValueError if the line is not a JSON object
    with a path. Only what is needed to look a file up is decoded here (a fraction of
    ``decode_entry``'s cost); the content fields are checked when a file is reused
    (``file_content``, ``decode_xattrs``)."""
    try:
        text = line.decode("utf-8")
        obj, end = _DECODER.raw_decode(text)  # json.loads less its per-call overhead
        if not isinstance(obj, dict) or text[end:].strip():
            raise ValueError("not one JSON object")
        if obj.get("type") != FILE or "ino" not in obj or "ctime_ns" not in obj:
            return None
        path = _get_bytes(obj, "path")
    except (TypeError, ValueError, binascii.Error) as e:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"invalid tree entry: {e}") from e
    if path is None:
        raise ValueError("invalid tree entry: no path")
    return path, obj


def cache_lines(lines: list[bytes]) -> list[tuple[bytes, dict[str, Any]] | None]:
    """``cache_line`` of each line, the batch decoded by one ``json.loads`` (a tenth of the
    per-line calls' overhead); a batch that does not decode as exactly one JSON value per
    line is decoded line by line, so a bad line fails as ``cache_line`` fails."""
    try:
        objs = json.loads("[" + b",".join(lines).decode("utf-8") + "]")
    except ValueError:
        objs = None
    if not isinstance(objs, list) or len(objs) != len(lines):
        return [cache_line(line) for line in lines]
    out: list[tuple[bytes, dict[str, Any]] | None] = []
    for obj, line in zip(objs, lines, strict=True):
        if not isinstance(obj, dict):
            return [cache_line(line) for line in lines]  # raises for this line
        if obj.get("type") != FILE or "ino" not in obj or "ctime_ns" not in obj:
            out.append(None)
            continue
        try:
            path = _get_bytes(obj, "path")
        except (TypeError, ValueError, binascii.Error) as e:
            raise ValueError(f"invalid tree entry: {e}") from e
        if path is None:
            raise ValueError("invalid tree entry: no path")
        out.append((path, obj))
    return out


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
        if not all(_is_int(v) for v in ints):
            raise ValueError("a numeric field is not an integer")
        mode, uid, gid, mtime_ns, size = ints
        if not 0 <= mode <= 0o7777 or size < 0:
            raise ValueError("mode or size out of range")
        target = blob = ino = ctime_ns = link = extents = None
        xattrs: Xattrs = ()
        if "xattrs" in obj:
            if kind not in XATTR_TYPES:
                raise ValueError(f"a {kind} entry has xattrs")
            xattrs = _decode_xattrs(obj["xattrs"])
        if kind == SYMLINK:
            target = _get_bytes(obj, "target")
            if not target or b"\0" in target:
                raise ValueError("symlink without a valid target")
        elif kind == HARDLINK:
            link = _get_bytes(obj, "link")
            if not link:
                raise ValueError("hard link without the path it links to")
            _check_path(link)
            if sort_key(link) >= sort_key(path):
                raise ValueError("a hard link names a path that does not come before it")
        elif kind == FILE:
            blob, extents = file_content(obj, size)
            if "ino" in obj or "ctime_ns" in obj:
                ino, ctime_ns = obj["ino"], obj["ctime_ns"]
                if not all(_is_int(v) for v in (ino, ctime_ns)) or ino < 0:
                    raise ValueError("ino or ctime_ns is not a valid integer")
        if path == b"" and kind != DIR:
            raise ValueError("the mount root is not a directory")
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise ValueError(f"invalid tree entry: {e}") from e
    return Entry(path, kind, mode, uid, gid, mtime_ns, size, target, blob, ino, ctime_ns,
                 link, xattrs, extents)


def decode_tree(stream: Iterable[bytes]) -> Iterator[Entry]:
    """Entries of a tree blob in tree order, streamed line by line (``stream``: its lines,
    e.g. a binary file over it).

    Raises ``IntegrityError`` on a malformed line, entries out of order or duplicated, an
    entry whose parent is not a directory listed before it, or a tree without its root.
    (That a hard link's first path is a file is for the reader to check when it meets it.)
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
