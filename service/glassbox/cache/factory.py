"""Build the cache adapter the settings ask for: Redis when a URL is set, the in-process LRU otherwise."""

from __future__ import annotations

from glassbox.cache.memory import MemoryCache
from glassbox.cache.port import ResultCache
from glassbox.cache.redis_cache import RedisCache
from glassbox.config import CacheSettings


def build_cache(settings: CacheSettings, *, max_connections: int = 16) -> ResultCache | None:
    """The configured adapter, or None when caching is disabled.

    Building a Redis adapter does not connect: a Redis that is down at start-up only makes the first
    lookups errors (computed without the cache) until it comes up.
    """
    if not settings.enabled:
        return None
    if settings.redis_url:
        return RedisCache(
            settings.redis_url,
            timeout_seconds=settings.redis_timeout_seconds,
            backoff_initial_seconds=settings.redis_backoff_initial_seconds,
            backoff_max_seconds=settings.redis_backoff_max_seconds,
            log_interval_seconds=settings.error_log_interval_seconds,
            max_connections=max_connections,
        )
    return MemoryCache(settings.max_bytes)
