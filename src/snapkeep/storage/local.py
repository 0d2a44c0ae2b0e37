"""A repository in a local directory: write to a temp file, fsync, rename, fsync the dir."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from snapkeep.errors import NotFoundError, RepositoryError
from snapkeep.storage.base import check_key, check_prefix, check_range

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class LocalBackend:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write_error(self, path: Path, e: OSError) -> RepositoryError:
        if e.errno in _DISK_FULL:
            return RepositoryError(
                f"the repository disk at {self.root} is full ({e.strerror}): "
                "free space or move the repository")
        return RepositoryError(f"cannot write {path}: {e.strerror or e}")

    def ensure(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._write_error(self.root, e) from e

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        # Unique per writer: two threads may put the same content-addressed key at once.
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise self._write_error(path, e) from e
        try:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as e:
            raise self._write_error(path.parent, e) from e

    def _missing(self, key: str) -> NotFoundError:
        return NotFoundError(f"{key} is not in the repository at {self.root}")

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._missing(key) from None
        except OSError as e:
            raise RepositoryError(f"cannot read {path}: {e.strerror}") from e

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        check_range(offset, length)
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                # Never ask for more than the file holds (no huge buffer for a bad length).
                length = max(0, min(length, os.fstat(f.fileno()).st_size - offset))
                return os.pread(f.fileno(), length, offset) if length else b""
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._missing(key) from None
        except OSError as e:
            raise RepositoryError(f"cannot read {path}: {e.strerror}") from e

    def get_range_into(self, key: str, offset: int, buf: memoryview) -> int:
        """``get_range`` into ``buf``; the count read (fewer at the end of the file)."""
        check_range(offset, len(buf))
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._missing(key) from None
        except OSError as e:
            raise RepositoryError(f"cannot read {path}: {e.strerror}") from e
        try:
            done = 0
            while done < len(buf):
                n = os.preadv(fd, [buf[done:]], offset + done)
                if n == 0:
                    break
                done += n
            return done
        except IsADirectoryError:
            raise self._missing(key) from None
        except OSError as e:
            raise RepositoryError(f"cannot read {path}: {e.strerror}") from e
        finally:
            os.close(fd)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        # Walk the deepest directory the prefix names, then filter by the string prefix.
        directory, _, _ = prefix.rpartition("/")
        base = self.root / directory if directory else self.root
        if not base.is_dir():
            return
        for dirpath, dirs, files in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            rel = "" if rel == "." else rel + "/"
            # Descend only into directories that can hold keys with this prefix.
            dirs[:] = [d for d in dirs if not d.startswith(".")
                       and ((rel + d + "/").startswith(prefix) or prefix.startswith(rel + d + "/"))]
            for name in files:
                if name.startswith("."):
                    continue  # temp files of an unfinished put
                key = rel + name
                if key.startswith(prefix):
                    yield key

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except (IsADirectoryError, NotADirectoryError):
            pass  # not a stored key: nothing to delete
        except OSError as e:
            raise RepositoryError(f"cannot delete {path}: {e.strerror}") from e
