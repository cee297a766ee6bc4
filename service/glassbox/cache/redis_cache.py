"""The Redis adapter: shared across server replicas; its trouble never fails a request.

Every command has a socket timeout. A refused connection or a timeout makes the call an ERROR (the
caller computes instead), is counted, and is logged at most once per interval with the number of
errors since the last log line. After a failure the adapter stops talking to Redis for a backoff
period that doubles on each further failure (up to a cap), so a dead Redis costs a request nothing
but a clock read; then one request probes while the others still skip, and the first success resets
the backoff and logs the recovery. redis-py's connection pool
reconnects by itself; one immediate retry on a connection error absorbs the stale pooled sockets a
Redis restart leaves behind. TLS (`rediss://`), user, password and database come from the URL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from glassbox.cache.port import ERROR, MISS, CacheStats, Lookup, Outcome

log = logging.getLogger(__name__)


class Backoff:
    """Exponential backoff with a single probe: while failing, one caller per period tries the backend.

    Not thread-safe by itself: the adapter calls it under its lock.
    """

    def __init__(
        self, initial: float, maximum: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.initial, self.maximum = initial, maximum
        self._clock = clock
        self._delay = 0.0
        self._retry_at = 0.0

    def allow(self) -> bool:
        """Whether this caller should use the backend now: always while healthy; while failing, only
        the first caller after the pause (the probe), so an outage never makes every request wait."""
        if not self.failing:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + self._delay
        return True

    @property
    def delay(self) -> float:
        """The current pause after a failure; 0 while healthy."""
        return self._delay

    @property
    def failing(self) -> bool:
        return self._delay > 0

    def failed(self) -> None:
        self._delay = min(self.maximum, self._delay * 2 if self._delay else self.initial)
        self._retry_at = self._clock() + self._delay

    def succeeded(self) -> None:
        self._delay = 0.0
        self._retry_at = 0.0


class RedisCache:
    """`ResultCache` on a Redis server; keys expire by Redis' own TTL (`SET ... PX`)."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float,
        backoff_initial_seconds: float,
        backoff_max_seconds: float,
        log_interval_seconds: float,
        max_connections: int,
    ) -> None:
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_seconds,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), retries=1, supported_errors=(redis.ConnectionError,)),
        )
        self._client = redis.Redis(connection_pool=pool)
        self._location = _redacted(url)
        self._backoff = Backoff(backoff_initial_seconds, backoff_max_seconds)
        self._log_interval = log_interval_seconds
        self._lock = threading.Lock()
        self._hits = self._misses = self._errors = 0
        self._errors_since_log = 0
        self._last_log = float("-inf")

    def get(self, key: str) -> Lookup:
        value = self._call(self._client.get, key)
        if value is ERROR:
            return ERROR
        with self._lock:
            if value is None:
                self._misses += 1
                return MISS
            self._hits += 1
        return Lookup(Outcome.HIT, value)

    def set(self, key: str, value: bytes, ttl_seconds: float) -> bool:
        return self._call(self._client.set, key, value, px=max(1, round(ttl_seconds * 1000))) is not ERROR

    def _call(self, command: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if not self._backoff.allow():
                self._count_error(None)
                return ERROR
        try:
            result = command(*args, **kwargs)
        except redis.RedisError as exc:
            with self._lock:
                self._backoff.failed()
                self._count_error(exc)
            return ERROR
        with self._lock:
            if self._backoff.failing:
                log.warning("redis cache at %s is reachable again", self._location)
                self._backoff.succeeded()
        return result

    def _count_error(self, exc: Exception | None) -> None:
        """Count an error; log at most once per interval (called with the lock held)."""
        self._errors += 1
        self._errors_since_log += 1
        now = time.monotonic()
        if now - self._last_log < self._log_interval:
            return
        reason = f"{type(exc).__name__}: {exc}" if exc is not None else "in backoff"
        log.warning(
            "redis cache at %s failed (%s); %d error(s) since the last report; computing without the cache, "
            "next attempt in %.1f s",
            self._location,
            reason,
            self._errors_since_log,
            self._backoff.delay,
        )
        self._errors_since_log = 0
        self._last_log = now

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self.backend, self._hits, self._misses, self._errors)

    def close(self) -> None:
        self._client.close()


def _redacted(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.partition(":")[0]
    return f"{scheme}{sep}{user + ':***' if user else '***'}@{host}"
