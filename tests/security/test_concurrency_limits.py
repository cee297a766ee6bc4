"""Concurrent calls per method: the excess is refused with RESOURCE_EXHAUSTED at once, health never is.

A blocking test method is added to a real GlassboxServer, so the interceptors run in their production
order; the test decides when each call finishes, so nothing depends on timing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import write_model_version
from glassbox.config import load_settings
from glassbox.server.app import GlassboxServer
from grpc_health.v1 import health_pb2, health_pb2_grpc

TOKEN = "limits-token-0123456789abcdef"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


class Gate:
    """A test RPC (`/test.Gate/Pass`) whose calls wait until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.open = threading.Event()
        self.calls = 0

    def handle(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.calls += 1
        self.entered.release()
        self.open.wait(timeout=30)
        return request

    def handler(self) -> grpc.GenericRpcHandler:
        method = grpc.unary_unary_rpc_method_handler(self.handle)
        return grpc.method_handlers_generic_handler("test.Gate", {"Pass": method})


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GlassboxServer, Gate, grpc.Channel]]:
    root = tmp_path_factory.mktemp("repository")
    write_model_version(root, "net", "1")
    settings = load_settings(
        address="127.0.0.1:0",
        model_repository=root,
        metrics={"port": 0},
        limits={"max_concurrent_calls_per_method": 2},
        security={"tokens": [TOKEN]},
    )
    server = GlassboxServer(settings)
    gate = Gate()
    server.server.add_generic_rpc_handlers((gate.handler(),))
    channel = grpc.insecure_channel(f"127.0.0.1:{server.start()}")
    yield server, gate, channel
    gate.open.set()
    channel.close()
    server.stop(grace=0)


def test_calls_over_the_limit_are_refused_and_health_still_answers(gated) -> None:
    _server, gate, channel = gated
    call = channel.unary_unary("/test.Gate/Pass")
    running = [call.future(b"x", timeout=30, metadata=AUTH) for _ in range(2)]
    for _ in running:
        assert gate.entered.acquire(timeout=10)

    with pytest.raises(grpc.RpcError) as refused:
        call(b"y", timeout=10, metadata=AUTH)
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "/test.Gate/Pass already has 2 calls running" in refused.value.details()
    assert "max_concurrent_calls_per_method" in refused.value.details()

    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    list_models = channel.unary_unary("/glassbox.v1.ModelService/ListModels")
    assert list_models(b"", timeout=5, metadata=AUTH) is not None

    gate.open.set()
    assert [f.result(timeout=10) for f in running] == [b"x", b"x"]
    assert call(b"z", timeout=10, metadata=AUTH) == b"z"
    gate.entered.acquire(timeout=10)
    gate.open.clear()


def test_unauthenticated_calls_never_reach_the_method_nor_take_a_slot(gated) -> None:
    _server, gate, channel = gated
    call = channel.unary_unary("/test.Gate/Pass")
    before = gate.calls
    for _ in range(5):
        with pytest.raises(grpc.RpcError) as refused:
            call(b"x", timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert gate.calls == before
    gate.open.set()
    assert call(b"ok", timeout=10, metadata=AUTH) == b"ok"
    gate.entered.acquire(timeout=10)
    gate.open.clear()


def test_the_default_limit_is_safe() -> None:
    settings = load_settings(model_repository=Path("models"))
    assert 0 < settings.limits.max_concurrent_calls_per_method < settings.worker_threads
