"""The in-process LRU: hits, misses, TTL, LRU order, the byte bound (also in real memory), threads."""

from __future__ import annotations

import gc
import threading
import tracemalloc

from glassbox.cache.memory import ENTRY_OVERHEAD_BYTES, MemoryCache
from glassbox.cache.port import Outcome


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_hit_after_set_and_miss_for_unknown_key() -> None:
    cache = MemoryCache(1 << 20)
    assert cache.get("k").outcome is Outcome.MISS
    cache.set("k", b"value", 60)
    found = cache.get("k")
    assert found.outcome is Outcome.HIT
    assert found.value == b"value"
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.errors, stats.entries) == (1, 1, 0, 1)
    assert stats.bytes == len("k") + len(b"value") + ENTRY_OVERHEAD_BYTES


def test_entries_expire_after_their_ttl() -> None:
    clock = FakeClock()
    cache = MemoryCache(1 << 20, clock=clock)
    cache.set("short", b"a", 10)
    cache.set("long", b"b", 100)
    clock.now += 9.9
    assert cache.get("short").outcome is Outcome.HIT
    clock.now += 0.2
    assert cache.get("short").outcome is Outcome.MISS
    assert cache.get("long").outcome is Outcome.HIT
    assert cache.stats().entries == 1  # the expired entry was dropped when met


def test_setting_a_key_again_replaces_value_and_ttl() -> None:
    clock = FakeClock()
    cache = MemoryCache(1 << 20, clock=clock)
    cache.set("k", b"old", 5)
    cache.set("k", b"new-value", 50)
    clock.now += 10
    assert cache.get("k").value == b"new-value"
    assert cache.stats().bytes == len("k") + len(b"new-value") + ENTRY_OVERHEAD_BYTES


def test_least_recently_used_entry_is_evicted_first() -> None:
    entry = 1000 + ENTRY_OVERHEAD_BYTES + 2
    cache = MemoryCache(4 * entry + 10)
    for name in ("k1", "k2", "k3", "k4"):
        cache.set(name, b"x" * 1000, 60)
    assert cache.get("k1").outcome is Outcome.HIT  # k1 is now the most recently used
    cache.set("k5", b"x" * 1000, 60)
    assert cache.get("k2").outcome is Outcome.MISS
    assert all(cache.get(k).outcome is Outcome.HIT for k in ("k1", "k3", "k4", "k5"))


def test_value_over_a_quarter_of_the_bound_is_not_stored_and_evicts_nothing() -> None:
    cache = MemoryCache(100_000)
    cache.set("small", b"s" * 100, 60)
    cache.set("huge", b"h" * 30_000, 60)
    assert cache.get("huge").outcome is Outcome.MISS
    assert cache.get("small").outcome is Outcome.HIT


def test_accounted_and_real_memory_stay_within_the_bound() -> None:
    bound = 2 * 1024 * 1024
    gc.collect()
    tracemalloc.start()
    try:
        cache = MemoryCache(bound)
        baseline, _ = tracemalloc.get_traced_memory()
        for i in range(2000):  # 2000 × 10 kB = 20 MB offered, 10× the bound
            cache.set(f"key-{i}", bytes([i % 256]) * 10_000, 60)
            assert cache.stats().bytes <= bound
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    stats = cache.stats()
    assert stats.entries is not None and 150 <= stats.entries <= bound // 10_000
    assert held - baseline < 1.25 * bound, f"cache holds {held - baseline} bytes for a bound of {bound}"
    assert cache.get("key-1999").outcome is Outcome.HIT
    assert cache.get("key-0").outcome is Outcome.MISS


def test_concurrent_writers_and_readers_keep_the_accounting_exact() -> None:
    cache = MemoryCache(200_000)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(400):
                key = f"{worker}-{i % 50}"
                cache.set(key, b"v" * (100 + i % 900), 60)
                found = cache.get(key)
                assert found.outcome is Outcome.MISS or found.value == b"v" * (100 + i % 900)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    stats = cache.stats()
    assert stats.bytes is not None and stats.bytes <= 200_000
    # The byte count must equal the sum over what is really there.
    assert stats.bytes == sum(len(k) + len(e.value) + ENTRY_OVERHEAD_BYTES for k, e in cache._entries.items())


def test_close_empties_the_cache() -> None:
    cache = MemoryCache(1 << 20)
    cache.set("k", b"v", 60)
    cache.close()
    assert cache.get("k").outcome is Outcome.MISS
    assert cache.stats().bytes == 0
