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


RANDOM_CHARS = 8  # 41 bits: two IDs made in the same millisecond collide ~1 in 10^12


def new_id() -> str:
    """16 characters: 8 of milliseconds since the epoch, 8 random. Sorts by time."""
    return (_base36(int(time.time() * 1000), 8)
            + _base36(secrets.randbelow(36 ** RANDOM_CHARS), RANDOM_CHARS))
