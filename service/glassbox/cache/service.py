"""`CacheService`: the one funnel a servicer computes a cacheable result through.

    key = service.key("attribution", model=model, method="smoothgrad", parameters=request, ...)
    result = service.get_or_compute(key, compute, model=model.name, method="smoothgrad")

It looks the key up (a value that is corrupt, foreign, or not signed with this server's key for this
cache key is a miss, counted by reason), computes on a miss, single-flighted so
concurrent identical requests in this process compute once, stores the framed compressed result with
the method's TTL, and records lookup time, hits, misses, errors and compute time. With caching
disabled it only computes and records. `bypass=True` skips the lookup and single-flight and stores the
fresh result, replacing whatever the cache held.

`get_or_compute_async` is the same funnel for an asyncio server: `compute` is a coroutine function (the
server's awaits the compute scheduler's future), lookups and stores run on the given executor, and the
single-flight shares one in-flight future per key between the event loop's tasks. A caller that leaves
(its task is cancelled) while others wait for its result hands the computation over: they start again
and one of them computes.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from glassbox.cache import codec
from glassbox.cache.factory import signing_key
from glassbox.cache.keys import ModelIdentity, result_key
from glassbox.cache.port import CacheObserver, Outcome, ResultCache
from glassbox.cache.singleflight import SingleFlight
from glassbox.config import CacheSettings
from glassbox.core.cancellation import NEVER_CANCELLED, CancellationToken
from glassbox.core.errors import Cancelled

log = logging.getLogger(__name__)

T = TypeVar("T")


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


@dataclass
class _AsyncFlight:
    """One computation in flight on the event loop, and how many other callers wait for it."""

    result: asyncio.Future[bytes]
    waiters: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)  # set once stored (or failed)


class CacheService:
    """Cache lookups, single-flight computation, storage and their metrics for one server (reported to
    `observer`, the server's metrics)."""

    def __init__(
        self,
        backend: ResultCache | None,
        settings: CacheSettings,
        observer: CacheObserver,
        *,
        key: bytes | None = None,
    ) -> None:
        """`key` signs the values (default: `cache.factory.signing_key(settings)`)."""
        self.backend = backend
        self.settings = settings
        self._key = key if key is not None else signing_key(settings)
        self._observer = observer
        self._flights: SingleFlight[bytes] = SingleFlight()
        self._async_flights: dict[str, _AsyncFlight] = {}
        if backend is not None and backend.stats().entries is not None:
            observer.track_cache_size(backend.stats)

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

    async def get_or_compute_async(
        self,
        key: str,
        compute: Callable[[], Awaitable[bytes]],
        *,
        model: str,
        method: str,
        bypass: bool = False,
        executor: Executor | None = None,
    ) -> CachedResult:
        """As `get_or_compute`, from a coroutine: `await compute()` on a miss; the backend's lookups and
        stores run on `executor` (None: in the calling thread, for a backend that never blocks)."""
        if self.backend is None:
            return CachedResult(await self._compute_async(compute, model, method), Source.COMPUTED)
        if bypass:
            value = await self._compute_async(compute, model, method)
            await _run(executor, self._store, key, value, model, method)
            return CachedResult(value, Source.COMPUTED)
        cached = await _run(executor, self._lookup, key, model, method)
        if cached is not None:
            return CachedResult(cached, Source.CACHE)
        while True:
            flight = self._async_flights.get(key)
            if flight is None:
                return CachedResult(await self._lead(key, compute, model, method, executor), Source.COMPUTED)
            flight.waiters += 1
            try:
                value = await asyncio.shield(flight.result)
            except Cancelled:
                await flight.done.wait()  # the leader left: start over once its flight is gone
                continue
            finally:
                flight.waiters -= 1
            return CachedResult(value, Source.SHARED)

    async def _lead(
        self,
        key: str,
        compute: Callable[[], Awaitable[bytes]],
        model: str,
        method: str,
        executor: Executor | None,
    ) -> bytes:
        """Compute for every caller of `key`, then store; the flight ends once the value is stored, so a
        caller arriving meanwhile shares the value instead of missing the cache."""
        flight = self._async_flights[key] = _AsyncFlight(asyncio.get_running_loop().create_future())
        try:
            try:
                value = await self._compute_async(compute, model, method)
            except BaseException as exc:
                shared = exc if isinstance(exc, Exception) and not isinstance(exc, Cancelled) else None
                flight.result.set_exception(shared or Cancelled("the computing call left"))
                flight.result.exception()  # retrieved: waiters may be none
                raise
            flight.result.set_result(value)
            await _run(executor, self._store, key, value, model, method)
            return value
        finally:
            del self._async_flights[key]
            flight.done.set()

    def waiters_async(self, key: str) -> int:
        """How many callers wait for the computation of `key` in flight on the event loop."""
        flight = self._async_flights.get(key)
        return flight.waiters if flight is not None else 0

    async def _compute_async(self, compute: Callable[[], Awaitable[bytes]], model: str, method: str) -> bytes:
        started = time.perf_counter()
        value = await compute()
        self._observer.observe_compute(model, method, time.perf_counter() - started)
        return value

    def _store(self, key: str, value: bytes, model: str, method: str) -> None:
        assert self.backend is not None
        frame = codec.encode(value, key=self._key, name=key)
        if not self.backend.set(key, frame, self.settings.ttl_for(method)):
            self._observer.count_cache_store_error(model, method)

    def _lookup(self, key: str, model: str, method: str) -> bytes | None:
        assert self.backend is not None
        started = time.perf_counter()
        found = self.backend.get(key)
        outcome, payload = found.outcome, None
        if found.value is not None:
            decoded = codec.decode(found.value, key=self._key, name=key)
            if isinstance(decoded, codec.Rejected):
                log.warning("cache value under %s refused (%s); treating it as a miss", key, decoded.value)
                self._observer.count_cache_rejected(decoded.value)
                outcome = Outcome.MISS
            else:
                payload = decoded
        self._observer.observe_cache_lookup(
            self.backend.backend, model, method, outcome, time.perf_counter() - started
        )
        return payload

    def _compute_and_store(self, key: str, compute: Callable[[], bytes], model: str, method: str) -> bytes:
        assert self.backend is not None
        value = self._compute(compute, model, method)
        self._store(key, value, model, method)
        return value

    def _compute(self, compute: Callable[[], bytes], model: str, method: str) -> bytes:
        started = time.perf_counter()
        value = compute()
        self._observer.observe_compute(model, method, time.perf_counter() - started)
        return value

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


async def _run(executor: Executor | None, function: Callable[..., T], *args: object) -> T:
    """`function(*args)` on `executor`, or here when there is none."""
    if executor is None:
        return function(*args)
    call = functools.partial(contextvars.copy_context().run, function, *args)
    return await asyncio.get_running_loop().run_in_executor(executor, call)
