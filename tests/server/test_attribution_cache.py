"""Attribute through the result cache, over real gRPC: hits and misses, equivalent requests sharing a
result, every change of meaning missing, bypass, TTL, single-flight, metrics, invalid requests never
served from the cache, weights changes across replicas sharing a Redis, and Redis killed mid-stream."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
from glassbox.cache import codec
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc, tensor_pb2
from google.protobuf.message import Message
from support.model_repository import write_model_version
from support.redis_server import RedisServer
from support.servers import RunningServer

PIXELS = np.random.default_rng(0).random((3, 64, 64), dtype=np.float32)
FAST_REDIS = {"redis_backoff_initial_seconds": 0.05, "redis_backoff_max_seconds": 0.2}


def image(pixels: np.ndarray = PIXELS) -> tensor_pb2.Image:
    return tensor_pb2.Image(
        pixels=tensor_pb2.Tensor(
            dtype=tensor_pb2.DATA_TYPE_FLOAT32, shape=list(pixels.shape), data=pixels.tobytes()
        )
    )


def smoothgrad(seed: int = 0, **fields: object) -> pb.AttributeRequest:
    request = pb.AttributeRequest(
        model="net", images=[image()], smoothgrad=pb.SmoothGradParams(samples=4, seed=seed)
    )
    for name, value in fields.items():
        if isinstance(value, list):
            del getattr(request, name)[:]
            getattr(request, name).extend(value)
        elif isinstance(value, Message):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


def attribute(server: RunningServer, request: pb.AttributeRequest) -> pb.AttributeResponse:
    return attribution_service_pb2_grpc.AttributionServiceStub(server.channel).Attribute(request, timeout=60)


def sample(server: RunningServer, name: str, **labels: str) -> float:
    return server.server.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_model_version(root, "net", "1", seed=0)
    return root


@pytest.fixture(scope="module")
def running(start_server: Callable[..., RunningServer], repo: Path) -> RunningServer:
    return start_server(model_repository=repo, cache={"ttl_seconds_by_method": {"saliency": 0.5}})


def test_second_identical_request_is_served_from_the_cache(running: RunningServer) -> None:
    first = attribute(running, smoothgrad(seed=100))
    second = attribute(running, smoothgrad(seed=100))
    assert not first.from_cache and first.stats.backward_passes > 0
    assert second.from_cache
    assert (second.stats.forward_passes, second.stats.backward_passes, second.stats.compute_seconds) == (
        0,
        0,
        0,
    )
    assert second.images == first.images  # same maps, byte for byte
    assert (second.model, second.version, second.method) == ("net", "1", "smoothgrad")


@pytest.mark.parametrize(
    "equivalent",
    [
        {"version": "1"},
        {"targets": pb.TargetSpec(top_k=1)},
        {"output": pb.OutputOptions(map=True)},
        {"output": pb.OutputOptions(aggregation=pb.AGGREGATION_SUM, overlay_alpha=0.85, clip_percentile=99)},
        {"smoothgrad": pb.SmoothGradParams(samples=4, seed=200, noise_fraction=0.15)},
        {"smoothgrad": pb.SmoothGradParams(samples=4, seed=200, saliency=pb.SaliencyParams())},
        {"smoothgrad": pb.SmoothGradParams(samples=4, seed=200, variant=pb.SMOOTH_GRAD_VARIANT_SMOOTHGRAD)},
    ],
    ids=lambda change: f"{next(iter(change))}={str(next(iter(change.values()))).strip() or 'set'}",
)
def test_equivalent_requests_share_a_result(running: RunningServer, equivalent: dict[str, object]) -> None:
    attribute(running, smoothgrad(seed=200))
    assert attribute(running, smoothgrad(seed=200, **equivalent)).from_cache


def one_pixel_changed() -> tensor_pb2.Image:
    pixels = PIXELS.copy()
    pixels[1, 10, 20] = np.nextafter(pixels[1, 10, 20], np.float32(0))
    return image(pixels)


@pytest.mark.parametrize(
    "change",
    [
        {"smoothgrad": pb.SmoothGradParams(samples=4, seed=301)},
        {"smoothgrad": pb.SmoothGradParams(samples=5, seed=300)},
        {"smoothgrad": pb.SmoothGradParams(samples=4, seed=300, noise_fraction=0.2)},
        {"smoothgrad": pb.SmoothGradParams(samples=4, seed=300, gradient_x_input=pb.GradientXInputParams())},
        {"targets": pb.TargetSpec(class_indices=[2])},
        {"targets": pb.TargetSpec(top_k=2)},
        {"images": [one_pixel_changed()]},
        {"output": pb.OutputOptions(aggregation=pb.AGGREGATION_ABS_MAX)},
        {"output": pb.OutputOptions(heatmap_png=True)},
        {"output": pb.OutputOptions(original_size=True)},
    ],
    ids=lambda change: next(iter(change)),
)
def test_any_change_of_meaning_is_a_miss(running: RunningServer, change: dict[str, object]) -> None:
    attribute(running, smoothgrad(seed=300))
    request = smoothgrad(seed=300, **change)
    assert not attribute(running, request).from_cache


def test_an_image_of_another_original_size_is_a_miss(running: RunningServer) -> None:
    attribute(running, smoothgrad(seed=350))
    larger = np.repeat(np.repeat(PIXELS, 2, axis=1), 2, axis=2)  # resizes to nearly the same 64×64 input
    response = attribute(running, smoothgrad(seed=350, images=[image(larger)]))
    assert not response.from_cache
    assert (response.images[0].original_height, response.images[0].original_width) == (128, 128)


def test_another_method_is_a_miss(running: RunningServer) -> None:
    attribute(running, smoothgrad(seed=400))
    request = pb.AttributeRequest(model="net", images=[image()], saliency=pb.SaliencyParams())
    assert not attribute(running, request).from_cache


def test_bypass_recomputes_and_refreshes_the_cached_result(running: RunningServer) -> None:
    attribute(running, smoothgrad(seed=500))
    bypassed = attribute(running, smoothgrad(seed=500, bypass_cache=True))
    assert not bypassed.from_cache and bypassed.stats.backward_passes > 0
    assert attribute(running, smoothgrad(seed=500)).from_cache


def test_entries_expire_after_the_method_ttl(running: RunningServer) -> None:
    request = pb.AttributeRequest(model="net", images=[image()], saliency=pb.SaliencyParams())
    request.images[0].pixels.data = (PIXELS * 0.5).tobytes()
    attribute(running, request)
    assert attribute(running, request).from_cache
    time.sleep(0.7)  # saliency's TTL in this server is 0.5 s
    assert not attribute(running, request).from_cache


def test_invalid_requests_are_refused_even_when_a_valid_twin_is_cached(running: RunningServer) -> None:
    attribute(running, smoothgrad(seed=600, image_targets=[pb.TargetSpec(top_k=1)]))
    with pytest.raises(grpc.RpcError) as both:
        attribute(
            running,
            smoothgrad(seed=600, targets=pb.TargetSpec(top_k=1), image_targets=[pb.TargetSpec(top_k=1)]),
        )
    assert both.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "image_targets" in (
        both.value.details() or ""
    )
    with pytest.raises(grpc.RpcError) as samples:
        attribute(running, smoothgrad(seed=600, smoothgrad=pb.SmoothGradParams(samples=0, seed=600)))
    assert samples.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "samples" in (
        samples.value.details() or ""
    )
    assert attribute(running, smoothgrad(seed=600, image_targets=[pb.TargetSpec(top_k=1)])).from_cache


def test_metrics_count_hits_misses_compute_time_and_passes(running: RunningServer) -> None:
    labels = {"model": "net", "method": "smoothgrad"}
    before = {
        name: sample(running, name, **labels)
        for name in (
            "glassbox_cache_hits_total",
            "glassbox_cache_misses_total",
            "glassbox_compute_seconds_count",
        )
    }
    passes_before = sample(running, "glassbox_passes_total", method="smoothgrad", direction="backward")
    computed = attribute(running, smoothgrad(seed=700))
    attribute(running, smoothgrad(seed=700))
    assert sample(running, "glassbox_cache_hits_total", **labels) - before["glassbox_cache_hits_total"] == 1
    assert (
        sample(running, "glassbox_cache_misses_total", **labels) - before["glassbox_cache_misses_total"] == 1
    )
    assert (
        sample(running, "glassbox_compute_seconds_count", **labels) - before["glassbox_compute_seconds_count"]
        == 1
    )
    passes = (
        sample(running, "glassbox_passes_total", method="smoothgrad", direction="backward") - passes_before
    )
    assert passes == computed.stats.backward_passes


def test_concurrent_identical_requests_compute_once(running: RunningServer) -> None:
    labels = {"model": "net", "method": "smoothgrad"}
    computations = sample(running, "glassbox_compute_seconds_count", **labels)
    request = smoothgrad(seed=800, smoothgrad=pb.SmoothGradParams(samples=64, seed=800))
    barrier = threading.Barrier(4)
    responses: list[pb.AttributeResponse] = []

    def call() -> None:
        barrier.wait()
        responses.append(attribute(running, request))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(responses) == 4
    assert sample(running, "glassbox_compute_seconds_count", **labels) - computations == 1
    assert all(r.images == responses[0].images for r in responses)


def test_replicas_sharing_redis_share_results_but_never_across_weights(
    start_server: Callable[..., RunningServer], redis_server: RedisServer, repo: Path, tmp_path: Path
) -> None:
    same_weights = tmp_path / "same"
    shutil.copytree(repo, same_weights)
    new_weights = tmp_path / "retrained"
    write_model_version(new_weights, "net", "1", seed=1)  # same name and version, other weights
    key_file = tmp_path / "cache-signing-key"
    key_file.write_text("one key for every replica of this deployment\n")
    cache = {
        "redis_url": redis_server.url,
        "namespace": "replicas",
        "signing_key_file": key_file,
        **FAST_REDIS,
    }
    first, replica, retrained = (
        start_server(model_repository=root, cache=cache) for root in (repo, same_weights, new_weights)
    )
    computed = attribute(first, smoothgrad(seed=900))
    from_replica = attribute(replica, smoothgrad(seed=900))
    assert not computed.from_cache and from_replica.from_cache
    assert from_replica.images == computed.images
    assert not attribute(retrained, smoothgrad(seed=900)).from_cache
    unkeyed = start_server(model_repository=same_weights, cache={**cache, "signing_key_file": None})
    assert not attribute(unkeyed, smoothgrad(seed=900)).from_cache  # its own random key: a miss
    assert sample(unkeyed, "glassbox_cache_rejected_total", reason="signature") == 1


def test_a_value_forged_in_redis_is_never_served(
    start_server: Callable[..., RunningServer], redis_server: RedisServer, repo: Path
) -> None:
    """Whoever can write into Redis, but does not hold the signing key, cannot make the server answer
    with a result of their choosing: the forged value is a miss, counted, and replaced."""
    server = start_server(
        model_repository=repo, cache={"redis_url": redis_server.url, "namespace": "forgery", **FAST_REDIS}
    )
    genuine = attribute(server, smoothgrad(seed=901))
    raw = redis.Redis.from_url(redis_server.url)
    (key,) = raw.keys("forgery:*")
    forged_response = pb.AttributeResponse()
    forged_response.CopyFrom(genuine)
    forged_response.images[0].attributions[0].target.label = "FORGED"
    for key_guess in (b"\0" * 32, b"glassbox" * 4):
        raw.set(key, codec.encode(forged_response.SerializeToString(), key=key_guess, name=key.decode()))
        answer = attribute(server, smoothgrad(seed=901))
        assert not answer.from_cache
        assert answer.images[0].attributions[0].target.label != "FORGED"
        assert answer.images == genuine.images
    assert sample(server, "glassbox_cache_rejected_total", reason="signature") == 2
    assert attribute(server, smoothgrad(seed=901)).from_cache  # the replaced value is the server's own


def test_redis_killed_mid_stream_fails_no_request_and_caching_resumes(
    start_server: Callable[..., RunningServer], redis_server: RedisServer, repo: Path
) -> None:
    server = start_server(
        model_repository=repo, cache={"redis_url": redis_server.url, "namespace": "fault", **FAST_REDIS}
    )
    requests = [
        pb.AttributeRequest(model="net", images=[image(PIXELS * s)], saliency=pb.SaliencyParams())
        for s in (0.2, 0.4, 0.6)
    ]
    sources = [attribute(server, requests[i % 3]).from_cache for i in range(9)]
    assert sources.count(True) == 6
    redis_server.kill()
    try:
        during = [attribute(server, requests[i % 3]) for i in range(9)]  # every call succeeds
        assert not any(r.from_cache for r in during)
        errors = sample(
            server, "glassbox_cache_errors_total", model="net", method="saliency", operation="get"
        )
        assert errors == 9
    finally:
        redis_server.start()
    deadline = time.monotonic() + 10
    while not attribute(server, requests[0]).from_cache:  # reconnects, stores, then hits
        assert time.monotonic() < deadline, "caching did not resume after Redis came back"
        time.sleep(0.05)
    assert all(attribute(server, requests[0]).from_cache for _ in range(3))
