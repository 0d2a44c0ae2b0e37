from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class Backend(Protocol):
    """A flat key → bytes store. Keys are '/'-separated relative paths.

    - ``put`` is atomic: a reader sees the whole object or none (never a prefix),
      and durable when it returns. Putting an existing key replaces it.
    - ``get`` raises ``NotFoundError`` for a missing key.
    - ``list`` yields keys under a prefix, in no particular order.
    - ``delete`` of a missing key is not an error (idempotent).
    """

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[str]: ...

    def delete(self, key: str) -> None: ...

    def describe(self) -> str:
        """Where this backend stores, for messages (never credentials)."""
        ...
