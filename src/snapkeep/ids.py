"""Identifiers for snapshots and activities: short, lowercase, sortable by creation time."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 36)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def new_id() -> str:
    """13 characters: 8 of milliseconds since the epoch, 5 random. Sorts by time."""
    return _base36(int(time.time() * 1000), 8) + _base36(secrets.randbits(26), 5)
