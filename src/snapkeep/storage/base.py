"""The byte-backend contract shared by every storage backend.

Keys
----
A key is a '/'-separated relative path of at most 1024 UTF-8 bytes. Each component is
non-empty, at most 255 UTF-8 bytes, is not ``.`` or ``..``, does not start with ``.``
(the local backend keeps its temp files there) and contains no control character
(U+0000–U+001F, U+007F) and no backslash (some S3 servers turn it into '/'). Anything
else printable is allowed: spaces, ``+ = & ? # % : ; , @ $ ! ' ( ) * ~ [ ] { } ^ ` |``,
non-ASCII letters. ``check_key`` enforces this; every backend calls it, so a key that
works on one backend works on all.

A key must not also be a directory of other keys: with ``a/b`` stored, ``a`` cannot be
put on the local backend (a file cannot be a directory); S3 would allow it. Use keys of
one depth per namespace (``data/ab/<id>``, ``index/<id>``), as the repository does.

A list prefix is a plain string prefix of keys (``"data/ab"`` matches ``"data/abc"``);
``""`` lists everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from snapkeep.errors import RepositoryError

MAX_KEY_BYTES = 1024
MAX_COMPONENT_BYTES = 255


class TransientStorageError(RepositoryError):
    """A failure that may go away by itself: connection refused or reset, timeout,
    a 5xx answer, throttling. ``RetryingBackend`` retries these; everything else
    (``NotFoundError``, denied access, a missing bucket, a full disk) is final.

    ``reason`` is the short cause ("connection refused", "SlowDown (HTTP 503)") that
    the retrying wrapper repeats in its final message."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class Backend(Protocol):
    """A flat key → bytes store. Keys are '/'-separated relative paths (see above).

    - ``put`` is atomic: a reader sees the whole object or none (never a prefix),
      and durable when it returns. Putting an existing key replaces it.
    - ``get`` raises ``NotFoundError`` for a missing key.
    - ``get_range(key, offset, length)`` returns the ``length`` bytes at ``offset``
      (packs are read by range). Like a file read it returns fewer bytes if the object
      ends earlier (``b""`` from or past its end); callers needing exactly ``length``
      bytes check the size. ``NotFoundError`` for a missing key. ``offset`` and
      ``length`` must be ≥ 0. A backend may also have ``get_range_into(key, offset, buf)``
      (the same read into a caller's reused buffer; the count read): see ``get_range_into``.
    - ``exists`` is true for a stored key (false for a "directory" prefix).
    - ``list`` yields keys starting with a prefix, in no particular order, each once.
    - ``delete`` of a missing key is not an error (idempotent).
    - ``ensure`` makes the container exist (the local directory, the S3 bucket);
      ``snapkeep init`` calls it. Idempotent. Other operations never create a bucket:
      a missing bucket is a ``RepositoryError`` saying to create it or run init.
    - ``describe`` is where the backend stores, for messages (never credentials).

    Errors are ``SnapkeepError`` subclasses only: ``NotFoundError``,
    ``TransientStorageError`` (retry may help), ``RepositoryError`` (final).
    """

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def get_range(self, key: str, offset: int, length: int) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[str]: ...

    def delete(self, key: str) -> None: ...

    def ensure(self) -> None: ...

    def describe(self) -> str:
        """Where this backend stores, for messages (never credentials)."""
        ...


def get_range(backend: Backend, key: str, offset: int, length: int) -> bytes:
    """``backend.get_range`` if it has one, else a slice of ``get`` (for test doubles)."""
    check_range(offset, length)
    method = getattr(backend, "get_range", None)
    if method is not None:
        return method(key, offset, length)
    return backend.get(key)[offset:offset + length]


def get_range_into(backend: Backend, key: str, offset: int, buf: memoryview) -> int:
    """``get_range(key, offset, len(buf))`` read into ``buf`` (a reused buffer: no new
    one per read) by ``backend.get_range_into`` if it has one, else copied there. The
    number of bytes read: fewer if the object ends earlier."""
    check_range(offset, len(buf))
    method = getattr(backend, "get_range_into", None)
    if method is not None:
        n: int = method(key, offset, buf)
        return n
    data = get_range(backend, key, offset, len(buf))
    buf[:len(data)] = data
    return len(data)


def ensure(backend: Backend) -> None:
    """``backend.ensure()`` if it has one (test doubles may not)."""
    method = getattr(backend, "ensure", None)
    if method is not None:
        method()


def check_range(offset: int, length: int) -> None:
    if offset < 0 or length < 0:
        raise ValueError(f"invalid range: offset {offset}, length {length}")


def _bad_key(key: str, why: str) -> RepositoryError:
    return RepositoryError(f"invalid repository key {key!r}: {why}")


def _check_components(key: str, parts: list[str]) -> None:
    for part in parts:
        if not part:
            raise _bad_key(key, "empty path component")
        if part.startswith("."):
            raise _bad_key(key, "a path component starts with '.'")
        if len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
            raise _bad_key(key, f"a path component is longer than {MAX_COMPONENT_BYTES} bytes")


def _check_chars(key: str) -> None:
    if "\\" in key:
        raise _bad_key(key, "backslash")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise _bad_key(key, "control character")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad_key(key, "not valid Unicode") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise _bad_key(key, f"longer than {MAX_KEY_BYTES} bytes")


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid key (see the module docstring), else raise."""
    if not isinstance(key, str) or not key:
        raise RepositoryError(f"invalid repository key {key!r}: empty")
    _check_chars(key)
    if key.startswith("/"):
        raise _bad_key(key, "absolute path")
    _check_components(key, key.split("/"))
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a valid list prefix: ``""``, or the start of a key
    (it may end with '/' or in the middle of a component)."""
    if prefix == "":
        return prefix
    _check_chars(prefix)
    if prefix.startswith("/"):
        raise _bad_key(prefix, "absolute path")
    parts = prefix.split("/")
    last = parts.pop()
    _check_components(prefix, parts)
    if last.startswith("."):
        raise _bad_key(prefix, "a path component starts with '.'")
    return prefix
