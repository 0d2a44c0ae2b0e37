"""What an import reads (docs/export-import.md): an export directory snapkeep wrote, or a
directory holding one plain SQL dump plus, per mount, a directory or a ``.tar.zst``.

``inspect`` looks at the directory and refuses, with a message saying what to change,
anything an import could not turn into a snapshot of the environment: no SQL file or
several, a SQL file for an environment without a database, a mount the environment does
not have, a part missing or of the wrong size.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

import zstandard

from snapkeep.config import EnvironmentConfig
from snapkeep.errors import ConfigError, UsageError
from snapkeep.services.transfer.exportdir import (
    DATABASE_PART,
    METADATA,
    HashingReader,
    mount_part,
    read_metadata,
)

SQL_SUFFIXES = (".sql", ".sql.gz", ".sql.zst")
RATIO_ENV = "SNAPKEEP_UPLOAD_MAX_RATIO"
MAX_RATIO = 100  # an uploaded part may expand to this many times its compressed size...
MIN_EXPANSION = 16 << 20  # ...or to this, whichever is more (a tiny tar is mostly padding)


@dataclass(frozen=True)
class ImportSource:
    """One import's inputs. ``mounts`` maps a mount to a directory or a ``.tar.zst``."""

    path: Path
    export: dict[str, Any] | None  # snapkeep-export.json, for an export directory
    sql: Path | None
    mounts: dict[str, Path] = field(default_factory=dict)

    def describe(self, place: str | None = None) -> str:
        """What is imported; ``place`` (e.g. "the upload") stands for the directory, whose
        path on this host means nothing to a remote user."""
        if self.export is not None:
            return (f"the export of snapshot {self.export.get('snapshot_id')} in "
                    f"{place or self.path}")
        if place is not None:
            return f"{self.sql.name} in {place}" if self.sql else place
        return str(self.sql or self.path)

    def expected(self, part: Path) -> dict[str, Any] | None:
        """Size and SHA-256 snapkeep-export.json lists for ``part`` (None: not an export)."""
        if self.export is None:
            return None
        return self.export["files"][part.relative_to(self.path).as_posix()]

    def database_defaults(self) -> dict[str, str] | None:
        """The exported database's charset, collation and comment, when the export says."""
        d = (self.export or {}).get("database_defaults")
        return d if isinstance(d, dict) and d.get("charset") and d.get("collation") else None

    @contextmanager
    def open_part(self, part: Path, on_read: Any = None) -> Iterator[HashingReader]:
        """The raw bytes of ``part``, counted and hashed (``verify`` against the export)."""
        try:
            f = open(part, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            raise UsageError(f"cannot read {part}: {e}") from e
        with f:
            yield HashingReader(f, str(part), on_read)

    def check_part(self, reader: HashingReader, part: Path) -> None:
        """After the last read of ``part``: for an export, its size and SHA-256."""
        expected = self.expected(part)
        if expected is not None:
            reader.drain()
            reader.verify(expected)


class Readable(Protocol):
    """What a part is read through: a file, or the ``HashingReader`` over one."""

    def read(self, n: int = -1, /) -> bytes: ...


class _Closable(Readable, Protocol):
    def close(self) -> None: ...


def decompressed(raw: Readable, name: str, limit: int | None = None) -> BinaryIO:
    """``raw`` uncompressed according to the suffix of ``name`` (.gz, .zst, or plain);
    with a ``limit``, reading more than ``limit`` bytes of it raises UsageError.

    Typed ``BinaryIO`` for the engines, which only ``read(n)`` (and close) what they get."""
    # gzip and zstandard only read() the stream forwards; their stubs ask for a whole file
    stream = cast(BinaryIO, raw)
    if name.endswith(".gz"):
        out: _Closable = gzip.GzipFile(fileobj=stream, mode="rb")
    elif name.endswith(".zst"):
        out = zstandard.ZstdDecompressor().stream_reader(
            stream, read_across_frames=True, closefd=False)
    else:
        return stream
    return cast(BinaryIO, out if limit is None else _Bounded(out, limit, name))


def expansion_limit(compressed: int) -> int:
    """The most an uploaded part of ``compressed`` bytes may expand to: SNAPKEEP_UPLOAD_
    MAX_RATIO (default 100) times its size, and at least 16 MiB. A compression bomb (a few
    KB that expand to the disk's size) stops there instead of filling the disk."""
    raw = os.environ.get(RATIO_ENV, "").strip()
    try:
        ratio = float(raw) if raw else MAX_RATIO
    except ValueError:
        ratio = -1
    if ratio <= 0:
        raise ConfigError(f"{RATIO_ENV}={raw!r} is not a number above 0; fix it or unset it "
                          f"(default {MAX_RATIO})")
    return max(int(compressed * ratio), MIN_EXPANSION)


class _Bounded(io.RawIOBase):
    """A decompressing reader that refuses to give more than ``limit`` bytes."""

    def __init__(self, inner: _Closable, limit: int, name: str) -> None:
        self._inner, self._limit, self._name = inner, limit, name
        self._seen = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if not len(buf):
            return 0
        data = self._inner.read(min(len(buf), self._limit + 1 - self._seen))
        self._seen += len(data)
        if self._seen > self._limit:
            raise UsageError(
                f"{os.path.basename(self._name)} expands to more than {self._limit >> 20} MiB, "
                f"over {RATIO_ENV} (default {MAX_RATIO}) times its compressed size: it looks "
                "like a compression bomb, and was not imported. Upload the real export; if "
                f"its data is that compressible, raise {RATIO_ENV} on the server")
        buf[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


def inspect(env: EnvironmentConfig, source: Path) -> ImportSource:
    """The import ``source`` holds for ``env``; UsageError saying what is wrong otherwise."""
    source = source.expanduser().absolute()
    if not source.is_dir():
        raise UsageError(f"{source} is not a directory: give the directory holding the export "
                         "(snapkeep-export.json) or the SQL dump and mount directories")
    export = read_metadata(source)
    if export is not None:
        return _from_export(env, source, export)
    return _from_dump(env, source)


def _from_export(env: EnvironmentConfig, source: Path, export: dict[str, Any]) -> ImportSource:
    files = export["files"]
    for name, facts in files.items():
        path = source / name
        try:
            size = path.stat().st_size
        except OSError as e:
            raise UsageError(f"the export in {source} lists {name}, which cannot be read "
                             f"({e}); the export is incomplete: export again") from e
        if size != int(facts.get("size", -1)):
            raise UsageError(f"{path} is {size} bytes, not the {facts.get('size')} that "
                             f"{METADATA} lists: the file is damaged or was changed; export "
                             "again")
    sql = source / DATABASE_PART if DATABASE_PART in files else None
    if sql is not None and env.database is None:
        raise _no_database(env, sql)
    mounts: dict[str, Path] = {}
    for m in export.get("mounts") or []:
        if mount_part(m) not in files:
            raise UsageError(f"the export in {source} names mount {m} but lists no "
                             f"{mount_part(m)}; export again")
        if m not in env.mounts:
            raise _unknown_mount(env, m, source)
        mounts[m] = source / mount_part(m)
    return ImportSource(source, export, sql, mounts)


def _from_dump(env: EnvironmentConfig, source: Path) -> ImportSource:
    found = sorted(p for p in source.iterdir()
                   if p.is_file() and p.name.lower().endswith(SQL_SUFFIXES))
    if env.database is not None and len(found) != 1:
        what = "no SQL file" if not found else \
            f"{len(found)} SQL files ({', '.join(p.name for p in found)})"
        raise UsageError(f"{source} holds {what}; an import needs exactly one dump of the "
                         f"database ({', '.join('*' + s for s in SQL_SUFFIXES)}), made with "
                         "`mariadb-dump DB > dump.sql` (or `mysqldump`), or an export "
                         "directory (snapkeep-export.json)")
    if env.database is None and found:
        raise _no_database(env, found[0])
    mounts: dict[str, Path] = {}
    for m in env.mounts:
        directory, tar = source / m, source / mount_part(m)
        if directory.is_dir() and tar.is_file():
            raise UsageError(f"{source} holds mount {m} twice ({directory}/ and {tar}); "
                             "keep one")
        if directory.is_dir():
            mounts[m] = directory
        elif tar.is_file():
            mounts[m] = tar
    for tar in (source / "mounts").rglob("*.tar.zst") if (source / "mounts").is_dir() else ():
        m = tar.relative_to(source / "mounts").as_posix()[:-len(".tar.zst")]
        if m not in env.mounts:
            raise _unknown_mount(env, m, source)
    return ImportSource(source, None, found[0] if found else None, mounts)


def _no_database(env: EnvironmentConfig, sql: Path) -> UsageError:
    return UsageError(f"{sql} is a database dump, but environment {env.name} has no "
                      "`database` configured; add it to snapkeep.toml or leave the dump out")


def _unknown_mount(env: EnvironmentConfig, mount: str, source: Path) -> UsageError:
    return UsageError(f"{source} holds mount {mount}, which environment {env.name} does not "
                      f"have (mounts: {', '.join(env.mounts) or 'none'}); add it to `mounts` "
                      "in snapkeep.toml or leave it out of the import")
