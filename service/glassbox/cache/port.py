"""The cache port: a key → bytes store with a time to live, which never raises to its caller.

Adapters turn their own trouble (a refused connection, a timeout) into `Outcome.ERROR`, so a broken
cache can only cost a recomputation, never a failed request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Outcome(StrEnum):
    """What one lookup found."""

    HIT = "hit"
    MISS = "miss"
    ERROR = "error"


@dataclass(frozen=True)
class Lookup:
    """The result of `ResultCache.get`: the stored bytes on a hit, None otherwise."""

    outcome: Outcome
    value: bytes | None = None


MISS = Lookup(Outcome.MISS)
ERROR = Lookup(Outcome.ERROR)


@dataclass(frozen=True)
class CacheStats:
    """Counters since the adapter was created; `entries`/`bytes` are None where the backend cannot tell."""

    backend: str
    hits: int
    misses: int
    errors: int
    entries: int | None = None
    bytes: int | None = None


class ResultCache(Protocol):
    """A key → bytes store with per-entry TTL; thread-safe; never raises."""

    backend: str

    def get(self, key: str) -> Lookup:
        """The value under `key`, or a MISS (absent or expired) or an ERROR (backend trouble)."""

    def set(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        """Store `value` for `ttl_seconds`; False when the backend failed (the caller only counts it)."""

    def stats(self) -> CacheStats:
        """Hit, miss and error counts, and the size where known."""

    def close(self) -> None:
        """Release connections and memory."""


class CacheObserver(Protocol):
    """What the cache service reports as it works: lookups, refusals, failed stores, compute time and its
    size. `glassbox.metrics.Metrics` implements it; the composition root (server/app.py) plugs it in, so
    the cache knows nothing of how its numbers are published."""

    def observe_cache_lookup(
        self, backend: str, model: str, method: str, outcome: Outcome, seconds: float
    ) -> None:
        """One lookup in `backend` (hit, miss or error) and how long it took."""

    def count_cache_rejected(self, reason: str) -> None:
        """A stored value refused on reading (corrupt, foreign, unsigned), counted as a miss."""

    def count_cache_store_error(self, model: str, method: str) -> None:
        """A result the backend failed to store."""

    def observe_compute(self, model: str, method: str, seconds: float) -> None:
        """One computation run through the cache (a miss, a bypass, or caching off)."""

    def track_cache_size(self, stats: Callable[[], CacheStats]) -> None:
        """Read the in-process cache's size from `stats` whenever the numbers are published."""
