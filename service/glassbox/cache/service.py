"""`CacheService`: the one funnel a servicer computes a cacheable result through.

    key = service.key("attribution", model=model, method="smoothgrad", parameters=request, ...)
    result = service.get_or_compute(key, compute, model=model.name, method="smoothgrad")

It looks the key up (a corrupt or foreign value is a miss), computes on a miss, single-flighted so
concurrent identical requests in this process compute once, stores the framed compressed result with
the method's TTL, and records lookup time, hits, misses, errors and compute time. With caching
disabled it only computes and records. `bypass=True` skips the lookup and single-flight and stores the
fresh result, replacing whatever the cache held.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from glassbox.cache import codec
from glassbox.cache.keys import ModelIdentity, result_key
from glassbox.cache.port import Outcome, ResultCache
from glassbox.cache.singleflight import SingleFlight
from glassbox.config import CacheSettings
from glassbox.core.cancellation import NEVER_CANCELLED, CancellationToken
from glassbox.metrics import Metrics

log = logging.getLogger(__name__)


class Source(StrEnum):
    """Where a result came from."""

    CACHE = "cache"
    COMPUTED = "computed"
    SHARED = "shared"  # computed once for several concurrent identical requests


@dataclass(frozen=True)
class CachedResult:
    value: bytes
    source: Source

    @property
    def from_cache(self) -> bool:
        return self.source is Source.CACHE


class CacheService:
    """Cache lookups, single-flight computation, storage and their metrics for one server."""

    def __init__(self, backend: ResultCache | None, settings: CacheSettings, metrics: Metrics) -> None:
        self.backend = backend
        self.settings = settings
        self._metrics = metrics
        self._flights: SingleFlight[bytes] = SingleFlight()
        if backend is not None and backend.stats().entries is not None:
            metrics.track_cache_size(backend.stats)

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    def key(
        self,
        kind: str,
        *,
        model: ModelIdentity,
        method: str,
        parameters: Any,
        targets: Any,
        pixels: Any,
        options: Any,
    ) -> str:
        """The namespaced key of one computation (see `cache.keys.result_key`), or "" when the cache is
        off: nothing would read it, and hashing every call's pixels costs ≈ 0.2 ms on a 64×64 image."""
        if self.backend is None:
            return ""
        return result_key(
            self.settings.namespace,
            kind,
            model=model,
            method=method,
            parameters=parameters,
            targets=targets,
            pixels=pixels,
            options=options,
        )

    def get_or_compute(
        self,
        key: str,
        compute: Callable[[], bytes],
        *,
        model: str,
        method: str,
        bypass: bool = False,
        cancel: CancellationToken = NEVER_CANCELLED,
    ) -> CachedResult:
        """The cached bytes under `key`, or `compute()`'s result (then stored)."""
        if self.backend is None:
            return CachedResult(self._compute(compute, model, method), Source.COMPUTED)
        if bypass:
            return CachedResult(self._compute_and_store(key, compute, model, method), Source.COMPUTED)
        cached = self._lookup(key, model, method)
        if cached is not None:
            return CachedResult(cached, Source.CACHE)
        value, shared = self._flights.do(
            key, lambda: self._compute_and_store(key, compute, model, method), cancel=cancel
        )
        return CachedResult(value, Source.SHARED if shared else Source.COMPUTED)

    def _lookup(self, key: str, model: str, method: str) -> bytes | None:
        assert self.backend is not None
        started = time.perf_counter()
        found = self.backend.get(key)
        payload = codec.decode(found.value) if found.value is not None else None
        outcome = found.outcome
        if outcome is Outcome.HIT and payload is None:
            log.warning("cache value under %s is corrupt or foreign; treating it as a miss", key)
            outcome = Outcome.MISS
        self._metrics.observe_cache_lookup(
            self.backend.backend, model, method, outcome, time.perf_counter() - started
        )
        return payload

    def _compute_and_store(self, key: str, compute: Callable[[], bytes], model: str, method: str) -> bytes:
        assert self.backend is not None
        value = self._compute(compute, model, method)
        if not self.backend.set(key, codec.encode(value), self.settings.ttl_for(method)):
            self._metrics.count_cache_store_error(model, method)
        return value

    def _compute(self, compute: Callable[[], bytes], model: str, method: str) -> bytes:
        started = time.perf_counter()
        value = compute()
        self._metrics.observe_compute(model, method, time.perf_counter() - started)
        return value

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
