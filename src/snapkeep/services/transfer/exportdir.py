"""The export directory (docs/export-import.md): its layout, and writing one so that an
interrupted export never leaves a file that looks complete.

::

    DIR/snapkeep-export.json        what the export holds; written last (the commit point)
    DIR/database.sql.zst            zstd (level 3) over a SQL script for the stock client
    DIR/mounts/<mount>.tar.zst      zstd over a pax tar of one mount (mounts/pub/media.tar.zst)

Parts are written into ``DIR/.snapkeep-export-<pid>-<token>.partial/`` and moved into
place once all are complete, then ``snapkeep-export.json`` is written (temp file, fsync,
rename): a directory holds a complete export exactly when that file is there and every
file it lists has its size and SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from snapkeep import __version__
from snapkeep.catalog import Clock, SystemClock
from snapkeep.errors import ServiceUnavailable, UsageError
from snapkeep.processes import pid_alive

METADATA = "snapkeep-export.json"
DATABASE_PART = "database.sql.zst"
FORMAT = 1  # of snapkeep-export.json
ZSTD_LEVEL = 3
_WORK = re.compile(r"^\.snapkeep-export-(\d+)-[0-9a-f]+\.partial$")


def mount_part(mount: str) -> str:
    """The part holding ``mount``: the mount's path kept (``mounts/pub/media.tar.zst``)."""
    return f"mounts/{mount}.tar.zst"


def parts_of(database: bool, mounts: list[str]) -> list[str]:
    return ([DATABASE_PART] if database else []) + [mount_part(m) for m in mounts]


def read_metadata(directory: Path) -> dict[str, Any] | None:
    """The export ``directory`` holds (its snapkeep-export.json), or None."""
    path = directory / METADATA
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {path}: {e}; it is not an export snapkeep wrote") from e
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise UsageError(f"{path} is not an export description snapkeep wrote (no `files`)")
    if int(data.get("format", 0)) > FORMAT:
        raise UsageError(f"{path} has format {data.get('format')}, newer than this snapkeep "
                         f"reads ({FORMAT}); upgrade snapkeep")
    return data


def check_destination(dest: Path, *, force: bool) -> None:
    """Refuse a destination that is a file, or already holds an export (unless ``force``)."""
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} is not a directory; give a directory to export into")
    held = read_metadata(dest) if dest.is_dir() else None
    if held is not None and not force:
        raise UsageError(f"{dest} already holds an export (snapshot {held.get('snapshot_id')} "
                         f"of {held.get('environment')}); choose another directory, or pass "
                         "--force to replace it")


def _safe_part(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and ".." not in parts and "" not in parts


class _HashingSink:
    """Writes through to a file, counting and hashing what it writes."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.size = 0
        self.sha = hashlib.sha256()

    def write(self, data: bytes | memoryview) -> int:
        self.f.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.f.flush()

    def writable(self) -> bool:
        return True


class HashingReader:
    """Reads a file, counting and hashing what was read; ``verify`` after the last read."""

    def __init__(self, f: BinaryIO, name: str, on_read: Any = None) -> None:
        self.f = f
        self.name = name
        self.size = 0
        self.sha = hashlib.sha256()
        self._on_read = on_read

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.sha.update(data)
        self.size += len(data)
        if self._on_read is not None and data:
            self._on_read(len(data))
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def verify(self, expected: dict[str, Any]) -> None:
        """UsageError unless what was read has the size and SHA-256 ``expected``."""
        if self.size != int(expected.get("size", -1)) or \
                self.sha.hexdigest() != expected.get("sha256"):
            raise UsageError(f"{self.name} does not match the size and SHA-256 that "
                             f"{METADATA} lists for it: the file is damaged or was changed; "
                             "export again")


class ExportWriter:
    """Writes one export into ``dest``: ``part`` for each file, then ``commit``; ``abort``
    (also on any failure) leaves ``dest`` as it was."""

    def __init__(self, dest: Path, *, force: bool, clock: Clock | None = None) -> None:
        self.dest = dest
        self.clock = clock or SystemClock()  # stamps exported_at
        self.force = force
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ServiceUnavailable(f"cannot create the export directory {dest}: {e}") from e
        check_destination(dest, force=force)
        remove_leftovers(dest)
        self.work = dest / f".snapkeep-export-{os.getpid()}-{secrets.token_hex(6)}.partial"
        self._mkdir(self.work)
        self.files: dict[str, dict[str, Any]] = {}

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ServiceUnavailable(f"cannot write into {self.dest}: {e}") from e

    @contextmanager
    def part(self, name: str, *, compress: bool = True) -> Iterator[BinaryIO]:
        """A stream to write part ``name`` into: compressed here (zstd level 3), or, with
        ``compress=False``, already-compressed bytes (a download) written as they are."""
        if not _safe_part(name):
            raise UsageError(f"{name!r} is not a part name an export may hold")
        path = self.work / name
        self._mkdir(path.parent)
        try:
            with open(path, "wb") as f:
                sink = _HashingSink(f)
                if compress:
                    # threads=1: zstd compresses in its own thread, beside the export
                    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=1)
                    with cctx.stream_writer(sink, closefd=False) as z:  # type: ignore[arg-type]
                        yield z
                else:
                    yield sink  # type: ignore[misc]
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise ServiceUnavailable(f"cannot write {self.dest / name}: {e}") from e
        self.files[name] = {"size": sink.size, "sha256": sink.sha.hexdigest()}

    def commit(self, facts: dict[str, Any]) -> dict[str, Any]:
        """Move the parts into place, then write snapkeep-export.json (the commit point);
        return what it says."""
        meta = {"format": FORMAT, **facts, "snapkeep_version": __version__,
                "exported_at": self.clock().isoformat(timespec="seconds"), "files": self.files}
        try:
            old = read_metadata(self.dest) if self.force else None
            if old is not None:  # first: the directory no longer claims a complete export
                (self.dest / METADATA).unlink()
                for name in old["files"]:
                    if _safe_part(name) and name not in self.files:
                        with contextlib.suppress(FileNotFoundError):
                            (self.dest / name).unlink()
            for name in self.files:
                target = self.dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.work / name, target)
            tmp = self.work / METADATA
            with open(tmp, "w") as f:
                json.dump(meta, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.dest / METADATA)
            _fsync_dir(self.dest)
        except OSError as e:
            raise ServiceUnavailable(f"cannot finish the export in {self.dest}: {e}") from e
        finally:
            self.abort()
        return meta

    def abort(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_leftovers(dest: Path) -> list[str]:
    """Remove the work directories of exports into ``dest`` whose process is gone."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(dest):
            m = _WORK.match(entry.name)
            if m and entry.is_dir(follow_symlinks=False) and not pid_alive(int(m.group(1))):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.name)
    return removed
