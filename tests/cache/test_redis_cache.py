"""The Redis adapter against a real redis-server: hits, TTL, namespacing, credentials in the URL,
timeouts and refused connections that never fail a caller, and a Redis killed and restarted in the
middle of a stream of cached computations."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
import redis
from glassbox.cache import codec
from glassbox.cache.port import Outcome
from glassbox.cache.redis_cache import Backoff, RedisCache
from glassbox.cache.service import CacheService, Source
from glassbox.config import CacheSettings
from glassbox.metrics import Metrics
from support.redis_server import RedisServer
from support.servers import free_port


def make_cache(url: str, **overrides: float) -> RedisCache:
    options = {
        "timeout_seconds": 0.25,
        "backoff_initial_seconds": 0.05,
        "backoff_max_seconds": 0.2,
        "log_interval_seconds": 60.0,
        "max_connections": 8,
        **overrides,
    }
    return RedisCache(url, **options)  # type: ignore[arg-type]


@pytest.fixture
def cache(redis_server: RedisServer) -> Iterator[RedisCache]:
    redis.Redis.from_url(redis_server.url).flushdb()
    adapter = make_cache(redis_server.url)
    yield adapter
    adapter.close()


def test_hit_after_set_and_miss_for_unknown_key(cache: RedisCache) -> None:
    assert cache.get("glassbox:test:absent").outcome is Outcome.MISS
    assert cache.set("glassbox:test:k", b"\x00value\xff", 60)
    found = cache.get("glassbox:test:k")
    assert (found.outcome, found.value) == (Outcome.HIT, b"\x00value\xff")
    stats = cache.stats()
    assert (stats.backend, stats.hits, stats.misses, stats.errors) == ("redis", 1, 1, 0)


def test_every_entry_gets_its_ttl_and_expires(cache: RedisCache, redis_server: RedisServer) -> None:
    cache.set("glassbox:test:short", b"v", 0.3)
    remaining_ms = redis.Redis.from_url(redis_server.url).pttl("glassbox:test:short")
    assert 0 < remaining_ms <= 300
    assert cache.get("glassbox:test:short").outcome is Outcome.HIT
    time.sleep(0.45)
    assert cache.get("glassbox:test:short").outcome is Outcome.MISS


def test_service_stores_namespaced_compressed_values_with_the_method_ttl(redis_server: RedisServer) -> None:
    raw = redis.Redis.from_url(redis_server.url)
    raw.flushdb()
    settings = CacheSettings(namespace="tenant-a", ttl_seconds=60, ttl_seconds_by_method={"smoothgrad": 5})
    service = CacheService(make_cache(redis_server.url), settings, Metrics())
    key = service.key(
        "attribution", model=_Model(), method="smoothgrad", parameters=(), targets=(), pixels=b"", options=()
    )
    payload = bytes(50_000)
    assert (
        service.get_or_compute(key, lambda: payload, model="m", method="smoothgrad").source is Source.COMPUTED
    )
    (stored_key,) = raw.keys("*")
    assert stored_key.decode() == key and key.startswith("tenant-a:attribution:")
    stored = raw.get(key)
    assert stored is not None and stored.startswith(codec.MAGIC) and len(stored) < len(payload) // 20
    assert 0 < raw.pttl(key) <= 5000
    hit = service.get_or_compute(key, lambda: b"never", model="m", method="smoothgrad")
    assert (hit.source, hit.value) == (Source.CACHE, payload)


def test_a_foreign_or_corrupt_value_under_a_key_is_a_miss_and_is_replaced(redis_server: RedisServer) -> None:
    raw = redis.Redis.from_url(redis_server.url)
    metrics = Metrics()
    service = CacheService(make_cache(redis_server.url), CacheSettings(), metrics)
    for foreign in (
        b"written by another program",
        codec.encode(b"good", key=service._key, name="glassbox:attribution:v1:foreign")[:-1] + b"X",
    ):
        raw.set("glassbox:attribution:v1:foreign", foreign)
        result = service.get_or_compute(
            "glassbox:attribution:v1:foreign", lambda: b"fresh", model="m", method="x"
        )
        assert (result.source, result.value) == (Source.COMPUTED, b"fresh")
        stored = raw.get("glassbox:attribution:v1:foreign") or b""
        assert codec.decode(stored, key=service._key, name="glassbox:attribution:v1:foreign") == b"fresh"
    assert (
        metrics.registry.get_sample_value("glassbox_cache_misses_total", {"model": "m", "method": "x"}) == 2
    )


def test_user_and_password_come_from_the_url(redis_server: RedisServer) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    # The least-privilege ACL docs/operations.md recommends.
    admin.acl_setuser(
        "glassbox", enabled=True, passwords=["+s3cret"], keys=["glassbox:*"], commands=["+get", "+set"]
    )
    authorised = make_cache(f"redis://glassbox:s3cret@127.0.0.1:{redis_server.port}/0")
    assert authorised.set("glassbox:auth:k", b"v", 60)
    assert authorised.get("glassbox:auth:k").value == b"v"
    assert authorised.get("other-namespace:k").outcome is Outcome.ERROR  # NOPERM is an error, not a raise
    wrong = make_cache(f"redis://glassbox:wrong@127.0.0.1:{redis_server.port}/0")
    assert wrong.get("glassbox:auth:k").outcome is Outcome.ERROR
    assert not wrong.set("glassbox:auth:k", b"x", 60)


def test_refused_connections_are_errors_counted_and_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = make_cache(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    caplog.set_level(logging.WARNING, logger="glassbox.cache.redis_cache")
    started = time.perf_counter()
    outcomes = [cache.get(f"k{i}").outcome for i in range(50)]
    stored = [cache.set(f"k{i}", b"v", 60) for i in range(10)]
    elapsed = time.perf_counter() - started
    assert set(outcomes) == {Outcome.ERROR} and not any(stored)
    assert cache.stats().errors == 60
    assert len(caplog.records) == 1, [r.getMessage() for r in caplog.records]
    assert "hunter2" not in caplog.text and "***" in caplog.text
    assert elapsed < 1.0  # refused at once, then skipped during the backoff


def test_a_redis_that_never_answers_times_out_and_backs_off() -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=16) as silent:  # accepts, never replies
        cache = make_cache(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout_seconds=0.2)
        started = time.perf_counter()
        assert cache.get("k").outcome is Outcome.ERROR
        first = time.perf_counter() - started
        started = time.perf_counter()
        assert cache.get("k").outcome is Outcome.ERROR  # within the backoff: not even tried
        second = time.perf_counter() - started
    assert 0.15 < first < 1.5
    assert second < 0.05


def test_backoff_doubles_up_to_its_cap_lets_one_probe_through_and_resets_on_success() -> None:
    now = [0.0]
    backoff = Backoff(0.5, 4.0, clock=lambda: now[0])
    assert all(backoff.allow() for _ in range(3)) and not backoff.failing
    delays = []
    for _ in range(5):
        backoff.failed()
        delays.append(backoff.delay)
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]
    now[0] += 3.9
    assert not backoff.allow()
    now[0] += 0.2
    assert backoff.allow()  # the probe
    assert not backoff.allow()  # everyone else keeps skipping while it runs
    backoff.succeeded()
    assert backoff.delay == 0 and all(backoff.allow() for _ in range(3))


def test_redis_killed_mid_stream_never_fails_a_request_and_caching_resumes(redis_server: RedisServer) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    metrics = Metrics()
    service = CacheService(make_cache(redis_server.url), CacheSettings(), metrics)
    computed: list[int] = []

    def request(i: int) -> tuple[Source, bytes]:
        def compute() -> bytes:
            computed.append(i)
            return f"result {i % 5}".encode()

        result = service.get_or_compute(f"glassbox:fault:{i % 5}", compute, model="m", method="fault")
        assert result.value == f"result {i % 5}".encode()
        return result.source, result.value

    before = [request(i) for i in range(20)]
    assert [s for s, _ in before].count(Source.CACHE) == 15  # 5 distinct keys computed once each
    redis_server.kill()
    during = [request(i) for i in range(20, 40)]
    assert all(source is Source.COMPUTED for source, _ in during)
    errors = metrics.registry.get_sample_value(
        "glassbox_cache_errors_total", {"model": "m", "method": "fault", "operation": "get"}
    )
    assert errors == 20
    redis_server.start()
    deadline = time.monotonic() + 10
    while request(0)[0] is not Source.CACHE:  # reconnects after the backoff, stores, then hits
        assert time.monotonic() < deadline, "caching did not resume after Redis came back"
        time.sleep(0.05)
    after = [request(i) for i in range(40, 60)]
    assert [s for s, _ in after].count(Source.CACHE) >= 15


class _Model:
    name, version, weights_digest = "m", "1", "00"
