"""Build the cache adapter the settings ask for: Redis when a URL is set, the in-process LRU otherwise."""

from __future__ import annotations

import logging
import secrets

from glassbox.cache.codec import MIN_KEY_BYTES
from glassbox.cache.memory import MemoryCache
from glassbox.cache.port import ResultCache
from glassbox.cache.redis_cache import RedisCache
from glassbox.config import CacheSettings

log = logging.getLogger(__name__)


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


def signing_key(settings: CacheSettings) -> bytes:
    """The key that signs cache values: `signing_key_file`'s contents (surrounding whitespace removed),
    else `signing_key`, else 32 random bytes for this process (logged as a warning when the cache is
    shared through Redis: every replica needs the same key to use the others' results)."""
    if settings.signing_key_file is not None:
        try:
            key = settings.signing_key_file.read_bytes().strip()
        except OSError as exc:
            raise ValueError(
                f"cannot read cache.signing_key_file {settings.signing_key_file}: {exc.strerror}"
            ) from exc
        source = "cache.signing_key_file"
    elif settings.signing_key is not None:
        key, source = settings.signing_key.get_secret_value().encode("utf-8"), "cache.signing_key"
    else:
        if settings.enabled and settings.redis_url:
            log.warning(
                "cache.signing_key is not set: cache values are signed with a key made for this process, so "
                "replicas sharing this Redis (and this server after a restart) will not use each other's "
                "results; give every replica the same cache.signing_key_file"
            )
        return secrets.token_bytes(32)
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"{source} must hold at least {MIN_KEY_BYTES} bytes, got {len(key)}")
    return key
