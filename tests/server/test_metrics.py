"""The /metrics endpoint of a running server, scraped over real HTTP and parsed with prometheus-client's
parser: gRPC counters and histograms move for the calls just made, with their final status codes."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
from glassbox.metrics import LATENCY_BUCKETS
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import model_service_pb2_grpc, tensor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from support.model_repository import write_model_version
from support.servers import RunningServer

SERVICE = "glassbox.v1.ModelService"


class Scrape:
    """One scrape of /metrics: every sample by name and labels."""

    def __init__(self, port: int) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            self.content_type = response.headers["Content-Type"]
            text = response.read().decode()
        self.families = {family.name: family for family in text_string_to_metric_families(text)}

    def value(self, name: str, **labels: str) -> float:
        """The sample `name` whose labels include `labels`; 0 when the series does not exist yet."""
        for family in self.families.values():
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return sample.value
        return 0.0

    def buckets(self, name: str, **labels: str) -> dict[float, float]:
        return {
            float(s.labels["le"]): s.value
            for s in self.families[name].samples
            if s.name == f"{name}_bucket" and labels.items() <= s.labels.items()
        }


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_model_version(root, "net", "1")
    return root


@pytest.fixture(scope="module")
def running(start_server: Callable[..., RunningServer], repo: Path) -> RunningServer:
    return start_server(model_repository=repo)


def predict(server: RunningServer, **fields: object) -> pb.PredictResponse:
    pixels = np.random.default_rng(0).random((3, 64, 64), dtype=np.float32)
    image = tensor_pb2.Image(
        pixels=tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_FLOAT32, shape=[3, 64, 64], data=pixels.tobytes())
    )
    request = pb.PredictRequest(model="net", images=[image])
    for name, value in fields.items():
        setattr(request, name, value)
    return model_service_pb2_grpc.ModelServiceStub(server.channel).Predict(request, timeout=30)


def metrics_port(server: RunningServer) -> int:
    return server.server.metrics.port


def test_predict_moves_the_handling_histogram_and_counters(running: RunningServer) -> None:
    labels = {"grpc_service": SERVICE, "grpc_method": "Predict", "grpc_type": "unary", "grpc_code": "OK"}
    before = Scrape(metrics_port(running))
    predict(running)
    after = Scrape(metrics_port(running))
    assert after.content_type.startswith("text/plain")
    for name in ("grpc_server_handling_seconds_count", "grpc_server_handled_total"):
        assert after.value(name, **labels) - before.value(name, **labels) == 1, name
    started = {k: v for k, v in labels.items() if k != "grpc_code"}
    assert (
        after.value("grpc_server_started_total", **started)
        - before.value("grpc_server_started_total", **started)
        == 1
    )
    assert after.value("grpc_server_handling_seconds_sum", **labels) > before.value(
        "grpc_server_handling_seconds_sum", **labels
    )
    assert after.value("grpc_server_in_flight", **started) == 0
    buckets = after.buckets("grpc_server_handling_seconds", **labels)
    assert sorted(buckets) == [*LATENCY_BUCKETS, float("inf")]
    assert min(buckets) == 0.001 and max(b for b in buckets if b != float("inf")) == 600
    assert buckets[float("inf")] == after.value("grpc_server_handling_seconds_count", **labels)


def test_error_codes_are_the_final_ones_and_the_server_keeps_serving(running: RunningServer) -> None:
    before = Scrape(metrics_port(running))
    with pytest.raises(grpc.RpcError) as not_found:
        predict(running, model="no-such-model")
    assert not_found.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as invalid:
        predict(running, top_k=1000)  # a domain error, mapped by the error interceptor
    assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert predict(running).predictions  # still serving
    after = Scrape(metrics_port(running))
    for code in ("NOT_FOUND", "INVALID_ARGUMENT", "OK"):
        labels = {"grpc_method": "Predict", "grpc_code": code}
        moved = after.value("grpc_server_handled_total", **labels) - before.value(
            "grpc_server_handled_total", **labels
        )
        assert moved == 1, code


def test_a_server_stream_is_measured_until_the_client_cancels_it(running: RunningServer) -> None:
    labels = {"grpc_service": "grpc.health.v1.Health", "grpc_method": "Watch", "grpc_type": "server_stream"}
    watch = health_pb2_grpc.HealthStub(running.channel).Watch(health_pb2.HealthCheckRequest(service=""))
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    assert Scrape(metrics_port(running)).value("grpc_server_in_flight", **labels) == 1
    watch.cancel()
    deadline = time.monotonic() + 10
    while (scrape := Scrape(metrics_port(running))).value("grpc_server_in_flight", **labels) != 0:
        assert time.monotonic() < deadline, "the cancelled stream is still counted in flight"
        time.sleep(0.05)
    assert scrape.value("grpc_server_handled_total", **labels, grpc_code="CANCELLED") == 1
    assert scrape.value("grpc_server_handling_seconds_count", **labels, grpc_code="CANCELLED") == 1


def test_model_load_time_and_process_metrics_are_exported(running: RunningServer) -> None:
    scrape = Scrape(metrics_port(running))
    assert scrape.value("glassbox_model_load_seconds", model="net", version="1") > 0
    assert scrape.value("process_resident_memory_bytes") > 0
    assert scrape.value("process_cpu_seconds_total") > 0
    assert "python_info" in scrape.families
    for family in (
        "glassbox_compute_seconds",
        "glassbox_cache_lookup_seconds",
        "glassbox_job_duration_seconds",
    ):
        assert scrape.families[family].type == "histogram"


def test_each_server_has_its_own_registry_and_port(
    start_server: Callable[..., RunningServer], running: RunningServer, repo: Path
) -> None:
    other = start_server(model_repository=repo)
    assert metrics_port(other) not in (0, metrics_port(running))
    labels = {"grpc_method": "Predict", "grpc_code": "OK"}
    before = Scrape(metrics_port(running)).value("grpc_server_handled_total", **labels)
    predict(other)
    assert Scrape(metrics_port(other)).value("grpc_server_handled_total", **labels) == 1
    assert Scrape(metrics_port(running)).value("grpc_server_handled_total", **labels) == before


def test_metrics_can_be_disabled(start_server: Callable[..., RunningServer], repo: Path) -> None:
    quiet = start_server(model_repository=repo, metrics={"enabled": False})
    assert metrics_port(quiet) == 0
    assert predict(quiet).predictions
