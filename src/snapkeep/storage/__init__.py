"""Byte backends. Knows nothing about snapshots: keys in, bytes out."""

from snapkeep.storage.base import Backend
from snapkeep.storage.local import LocalBackend

__all__ = ["Backend", "LocalBackend", "open_backend"]


def open_backend(location: str) -> Backend:
    """A backend for a repository location (a local directory path today)."""
    return LocalBackend(location)
