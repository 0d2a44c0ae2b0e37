"""Whole packs kept in memory, for backends without ranged reads."""

from __future__ import annotations

import threading
from collections import OrderedDict

from snapkeep.repository import packs
from snapkeep.storage import Backend

PACK_CACHE_BYTES = 96 * 1024 * 1024


class PackCache:
    """Whole packs kept in memory for backends without ranged reads (bounded, LRU)."""

    def __init__(self, backend: Backend, limit: int = PACK_CACHE_BYTES) -> None:
        self.backend = backend
        self.limit = limit
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._inflight: dict[str, threading.Event] = {}

    def get(self, pack_id: str) -> bytes:
        while True:
            with self._lock:
                data = self._data.get(pack_id)
                if data is not None:
                    self._data.move_to_end(pack_id)
                    return data
                ev = self._inflight.get(pack_id)
                if ev is None:
                    ev = self._inflight[pack_id] = threading.Event()
                    break
            ev.wait()
        try:
            data = self.backend.get(packs.pack_key(pack_id))
            with self._lock:
                self._data[pack_id] = data
                self._size += len(data)
                while self._size > self.limit and len(self._data) > 1:
                    _, old = self._data.popitem(last=False)
                    self._size -= len(old)
            return data
        finally:
            with self._lock:
                self._inflight.pop(pack_id, None)
            ev.set()

    def drop(self, pack_id: str) -> None:
        with self._lock:
            old = self._data.pop(pack_id, None)
            if old is not None:
                self._size -= len(old)
