"""CacheService: the lookup → single-flight compute → store funnel, its bypass and its metrics."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from glassbox.cache import codec
from glassbox.cache.factory import build_cache
from glassbox.cache.memory import MemoryCache
from glassbox.cache.redis_cache import RedisCache
from glassbox.cache.service import CacheService, Source
from glassbox.config import CacheSettings, load_settings
from glassbox.metrics import Metrics

LABELS = {"model": "shapes", "method": "smoothgrad"}
IDENTITY = SimpleNamespace(name="shapes", version="1", weights_digest="abc")


def make_service(**settings: object) -> tuple[CacheService, Metrics]:
    metrics = Metrics()
    cache_settings = CacheSettings(**settings)  # type: ignore[arg-type]
    return CacheService(build_cache(cache_settings), cache_settings, metrics), metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, {**LABELS, **labels}) or 0.0


def test_miss_computes_and_stores_then_hit_serves_the_same_bytes() -> None:
    service, metrics = make_service()
    first = service.get_or_compute("k", lambda: b"map bytes", **LABELS)
    second = service.get_or_compute("k", lambda: b"different", **LABELS)
    assert (first.source, first.value, first.from_cache) == (Source.COMPUTED, b"map bytes", False)
    assert (second.source, second.value, second.from_cache) == (Source.CACHE, b"map bytes", True)
    assert sample(metrics, "glassbox_cache_misses_total") == 1
    assert sample(metrics, "glassbox_cache_hits_total") == 1
    assert sample(metrics, "glassbox_compute_seconds_count") == 1
    assert (
        metrics.registry.get_sample_value("glassbox_cache_lookup_seconds_count", {"backend": "memory"}) == 2
    )


def test_bypass_recomputes_and_refreshes_the_entry() -> None:
    service, _ = make_service()
    service.get_or_compute("k", lambda: b"old", **LABELS)
    fresh = service.get_or_compute("k", lambda: b"new", bypass=True, **LABELS)
    assert (fresh.source, fresh.value) == (Source.COMPUTED, b"new")
    assert service.get_or_compute("k", lambda: b"unused", **LABELS).value == b"new"


def test_disabled_cache_computes_every_time_and_still_times_the_computation() -> None:
    service, metrics = make_service(enabled=False)
    assert not service.enabled
    results = [service.get_or_compute("k", lambda: b"v", **LABELS).source for _ in range(3)]
    assert results == [Source.COMPUTED] * 3
    assert sample(metrics, "glassbox_compute_seconds_count") == 3
    assert sample(metrics, "glassbox_cache_misses_total") == 0


def test_a_disabled_cache_builds_no_key() -> None:
    """Nothing would read it: the pixels of every call are not hashed for nothing."""
    disabled, _ = make_service(enabled=False)
    enabled, _ = make_service()
    arguments = {"model": IDENTITY, "method": "saliency", "parameters": (), "targets": (3,), "pixels": b"px"}
    assert disabled.key("attribution", options=None, **arguments) == ""
    assert enabled.key("attribution", options=None, **arguments).startswith("glassbox:attribution:v")


def test_concurrent_identical_misses_compute_once() -> None:
    service, metrics = make_service()
    calls: list[int] = []
    gate = threading.Event()

    def compute() -> bytes:
        calls.append(1)
        gate.wait(5)
        return b"shared"

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(service.get_or_compute, "k", compute, **LABELS) for _ in range(6)]
        deadline = time.monotonic() + 5
        while service._flights.waiters("k") < 5:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        gate.set()
        sources = sorted(f.result(timeout=5).source for f in futures)
    assert len(calls) == 1
    assert sources == sorted([Source.COMPUTED] + [Source.SHARED] * 5)
    assert sample(metrics, "glassbox_compute_seconds_count") == 1


def test_a_failed_computation_is_not_cached() -> None:
    service, _ = make_service()
    with pytest.raises(RuntimeError):
        service.get_or_compute("k", lambda: (_ for _ in ()).throw(RuntimeError("boom")), **LABELS)
    assert service.get_or_compute("k", lambda: b"ok", **LABELS).source is Source.COMPUTED


def test_ttl_per_method_overrides_the_default() -> None:
    clock = [0.0]
    settings = CacheSettings(ttl_seconds=100, ttl_seconds_by_method={"occlusion": 10})
    service = CacheService(MemoryCache(1 << 20, clock=lambda: clock[0]), settings, Metrics())
    service.get_or_compute("a", lambda: b"a", model="m", method="occlusion")
    service.get_or_compute("b", lambda: b"b", model="m", method="smoothgrad")
    clock[0] = 50
    assert service.get_or_compute("a", lambda: b"a2", model="m", method="occlusion").source is Source.COMPUTED
    assert service.get_or_compute("b", lambda: b"b2", model="m", method="smoothgrad").source is Source.CACHE


def test_values_are_stored_framed_and_a_damaged_entry_is_a_miss() -> None:
    backend = MemoryCache(1 << 20)
    metrics = Metrics()
    service = CacheService(backend, CacheSettings(), metrics, key=b"k" * 32)
    service.get_or_compute("k", lambda: bytes(10_000), **LABELS)
    stored = backend.get("k").value
    assert stored is not None and codec.decode(stored, key=b"k" * 32, name="k") == bytes(10_000)
    assert len(stored) < 1000
    backend.set("k", stored[:-3], 60)
    assert service.get_or_compute("k", lambda: b"recomputed", **LABELS).value == b"recomputed"
    assert metrics.registry.get_sample_value("glassbox_cache_rejected_total", {"reason": "signature"}) == 1


def test_a_value_forged_or_moved_without_the_key_is_never_served() -> None:
    backend = MemoryCache(1 << 20)
    metrics = Metrics()
    service = CacheService(backend, CacheSettings(signing_key="the server's own key"), metrics)
    service.get_or_compute("genuine", lambda: b"the result for another image", **LABELS)
    forger = CacheService(backend, CacheSettings(signing_key="someone else's key!"), Metrics())
    forger.get_or_compute("forged", lambda: b"FORGED", **LABELS)
    backend.set("moved", backend.get("genuine").value or b"", 60)  # a genuine value under another key
    for key in ("forged", "moved"):
        result = service.get_or_compute(key, lambda: b"computed here", **LABELS)
        assert (result.source, result.value) == (Source.COMPUTED, b"computed here")
    assert metrics.registry.get_sample_value("glassbox_cache_rejected_total", {"reason": "signature"}) == 2
    assert service.get_or_compute("forged", lambda: b"never", **LABELS).value == b"computed here"


def test_in_process_cache_size_is_exported() -> None:
    service, metrics = make_service(max_bytes=1 << 20)
    service.get_or_compute("k", lambda: b"x" * 100, **LABELS)
    assert metrics.registry.get_sample_value("glassbox_cache_entries") == 1
    assert (metrics.registry.get_sample_value("glassbox_cache_bytes") or 0) > 100


def test_factory_picks_the_adapter_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(build_cache(CacheSettings()), MemoryCache)
    assert build_cache(CacheSettings(enabled=False)) is None
    monkeypatch.setenv("GLASSBOX_REDIS_URL", "rediss://user:pw@cache.internal:6380/2")
    settings = load_settings()
    assert settings.cache.redis_url == "rediss://user:pw@cache.internal:6380/2"
    adapter = build_cache(settings.cache)
    assert isinstance(adapter, RedisCache)  # no connection is made until the first lookup
    adapter.close()
    assert load_settings(redis_url="redis://flag:6379/0").cache.redis_url == "redis://flag:6379/0"
    monkeypatch.delenv("GLASSBOX_REDIS_URL")
    monkeypatch.setenv("REDIS_URL", "redis://someone-elses:6379/0")
    assert load_settings().cache.redis_url == ""  # only the GLASSBOX_ name is ours
