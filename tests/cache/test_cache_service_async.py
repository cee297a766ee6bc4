"""CacheService.get_or_compute_async: the asyncio server's funnel. Identical concurrent requests compute
once and share the value; a failure is shared; a leader that leaves hands the computation over to a
waiter; lookups and stores run on the given executor."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from glassbox.cache.factory import build_cache
from glassbox.cache.service import CacheService, Source
from glassbox.config import CacheSettings
from glassbox.metrics import Metrics

LABELS = {"model": "shapes", "method": "smoothgrad"}


def make_service() -> tuple[CacheService, Metrics]:
    metrics = Metrics()
    settings = CacheSettings()
    return CacheService(build_cache(settings), settings, metrics), metrics


def computed(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("glassbox_compute_seconds_count", LABELS) or 0.0


async def until(condition, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


def test_concurrent_identical_requests_compute_once_then_hit() -> None:
    service, metrics = make_service()
    threads: set[str] = set()

    class RecordingPool(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
            def run():
                threads.add(threading.current_thread().name)
                return fn(*args, **kwargs)

            return super().submit(run)

    async def main() -> None:
        release = asyncio.Event()
        calls = 0

        async def compute() -> bytes:
            nonlocal calls
            calls += 1
            await release.wait()
            return b"map"

        with RecordingPool(2, thread_name_prefix="lookup") as pool:
            tasks = [
                asyncio.ensure_future(service.get_or_compute_async("k", compute, **LABELS, executor=pool))
                for _ in range(5)
            ]
            await until(lambda: service.waiters_async("k") == 4)
            release.set()
            results = await asyncio.gather(*tasks)
            assert calls == 1
            assert sorted(r.source for r in results) == sorted([Source.COMPUTED] + [Source.SHARED] * 4)
            assert {r.value for r in results} == {b"map"}
            hit = await service.get_or_compute_async("k", compute, **LABELS, executor=pool)
            assert (hit.source, hit.value) == (Source.CACHE, b"map")
        assert threads and all(name.startswith("lookup") for name in threads)

    asyncio.run(main())
    assert computed(metrics) == 1


def test_a_failure_is_shared_and_not_stored() -> None:
    service, _metrics = make_service()

    async def main() -> None:
        release = asyncio.Event()

        async def compute() -> bytes:
            await release.wait()
            raise ValueError("broken")

        tasks = [
            asyncio.ensure_future(service.get_or_compute_async("k", compute, **LABELS)) for _ in range(3)
        ]
        await until(lambda: service.waiters_async("k") == 2)
        release.set()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            assert isinstance(outcome, ValueError)

        async def fine() -> bytes:
            return b"ok"

        assert (await service.get_or_compute_async("k", fine, **LABELS)).source is Source.COMPUTED

    asyncio.run(main())


def test_a_leader_that_leaves_hands_the_computation_to_a_waiter() -> None:
    service, metrics = make_service()

    async def main() -> None:
        started = asyncio.Event()
        release = asyncio.Event()
        computations = 0

        async def compute() -> bytes:
            nonlocal computations
            computations += 1
            started.set()
            await release.wait()
            return b"map %d" % computations

        leader = asyncio.ensure_future(service.get_or_compute_async("k", compute, **LABELS))
        await started.wait()
        waiters = [
            asyncio.ensure_future(service.get_or_compute_async("k", compute, **LABELS)) for _ in range(2)
        ]
        await until(lambda: service.waiters_async("k") == 2)
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        await until(lambda: computations == 2)  # one waiter leads now
        release.set()
        results = await asyncio.gather(*waiters)
        assert sorted(r.source for r in results) == [Source.COMPUTED, Source.SHARED]
        assert {r.value for r in results} == {b"map 2"}

    asyncio.run(main())
    assert computed(metrics) == 1  # the cancelled computation is not counted


def test_a_waiter_that_leaves_does_not_disturb_the_leader() -> None:
    service, _metrics = make_service()

    async def main() -> None:
        release = asyncio.Event()

        async def compute() -> bytes:
            await release.wait()
            return b"map"

        leader = asyncio.ensure_future(service.get_or_compute_async("k", compute, **LABELS))
        waiter = asyncio.ensure_future(service.get_or_compute_async("k", compute, **LABELS))
        await until(lambda: service.waiters_async("k") == 1)
        waiter.cancel()
        await until(lambda: service.waiters_async("k") == 0)
        release.set()
        assert (await leader).value == b"map"

    asyncio.run(main())


def test_bypass_and_disabled_cache() -> None:
    service, _metrics = make_service()
    off = CacheService(None, CacheSettings(enabled=False), Metrics())

    async def main() -> None:
        async def first() -> bytes:
            return b"one"

        async def second() -> bytes:
            return b"two"

        await service.get_or_compute_async("k", first, **LABELS)
        fresh = await service.get_or_compute_async("k", second, **LABELS, bypass=True)
        assert (fresh.source, fresh.value) == (Source.COMPUTED, b"two")
        assert (await service.get_or_compute_async("k", first, **LABELS)).value == b"two"
        assert (await off.get_or_compute_async("", first, **LABELS)).source is Source.COMPUTED

    asyncio.run(main())
