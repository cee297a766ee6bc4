"""The default adapter: an in-process LRU bounded in bytes, with a TTL per entry. Needs no Redis.

The bound counts key and value bytes plus a fixed per-entry overhead, so a flood of tiny entries is
bounded too. A value larger than a quarter of the bound is not stored: it would evict most of the
cache for one entry.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from glassbox.cache.port import MISS, CacheStats, Lookup, Outcome

ENTRY_OVERHEAD_BYTES = 128
"""Approximate bookkeeping cost of one entry (dict slot, tuple, key and bytes object headers)."""


@dataclass(frozen=True)
class _Entry:
    value: bytes
    expires_at: float
    size: int


class MemoryCache:
    """A thread-safe LRU of at most `max_bytes`; expired entries are dropped when met or evicted."""

    backend = "memory"

    def __init__(self, max_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._hits = self._misses = 0

    def get(self, key: str) -> Lookup:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.expires_at <= self._clock():
                if entry is not None:
                    self._remove(key)
                self._misses += 1
                return MISS
            self._entries.move_to_end(key)
            self._hits += 1
            return Lookup(Outcome.HIT, entry.value)

    def set(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        size = len(key) + len(value) + ENTRY_OVERHEAD_BYTES
        with self._lock:
            if key in self._entries:
                self._remove(key)
            if size > self.max_bytes // 4 or ttl_seconds <= 0:
                return True
            self._entries[key] = _Entry(value, self._clock() + ttl_seconds, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._remove(next(iter(self._entries)))
            return True

    def _remove(self, key: str) -> None:
        self._bytes -= self._entries.pop(key).size

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self.backend, self._hits, self._misses, 0, len(self._entries), self._bytes)

    def close(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
