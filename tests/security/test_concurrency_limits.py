"""No per-method slot limit at the front end: calls that wait hold a coroutine, not a thread, so many of
them (more than the old per-method limit, more than the blocking-I/O pool has threads) neither refuse
nor delay other calls, health checks and their streams included; load is bounded by the compute
scheduler's admission instead (tests/serving). Unauthenticated calls still never reach a method.

Test methods are added to a real GlassboxServer, so the interceptors run in their production order: an
async one that waits on a gate the test opens, and a synchronous one (the front end runs it on its
blocking-I/O pool) that aborts, so nothing depends on timing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import grpc
import pytest
from glassbox.config import load_settings
from glassbox.server.app import GlassboxServer
from glassbox_client._generated.glassbox.v1 import model_service_pb2, model_service_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.model_repository import write_model_version

TOKEN = "limits-token-0123456789abcdef"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
PARKED = 40
"""Calls parked at once: over the old per-method limit (12) and over the pool's threads (2)."""


class Gate:
    """`/test.Gate/Pass` waits until the test opens the gate; `/test.Gate/Refuse` (synchronous) aborts."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.open = asyncio.Event()
        self.entered = 0
        self.calls = 0

    async def handle(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.calls += 1
        self.entered += 1
        await self.open.wait()
        return request

    def refuse(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "request: refused on a pool thread")
        raise AssertionError("abort returns only by raising")

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "test.Gate",
            {
                "Pass": grpc.unary_unary_rpc_method_handler(self.handle),
                "Refuse": grpc.unary_unary_rpc_method_handler(self.refuse),
            },
        )

    def set_open(self, value: bool) -> None:
        asyncio.run_coroutine_threadsafe(self._set(value), self.loop).result(timeout=10)

    async def _set(self, value: bool) -> None:
        if value:
            self.open.set()
        else:
            self.open.clear()
            self.entered = 0


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GlassboxServer, Gate, grpc.Channel]]:
    root = tmp_path_factory.mktemp("repository")
    write_model_version(root, "net", "1")
    settings = load_settings(
        address="127.0.0.1:0",
        model_repository=root,
        metrics={"port": 0},
        worker_threads=2,
        security={"tokens": [TOKEN]},
    )
    server = GlassboxServer(settings)
    gate = Gate(server._loop.loop)
    server.server.add_generic_rpc_handlers((gate.handler(),))
    channel = grpc.insecure_channel(f"127.0.0.1:{server.start()}")
    yield server, gate, channel
    gate.set_open(True)
    channel.close()
    server.stop(grace=0)


def _entered(gate: Gate, count: int) -> None:
    deadline = time.monotonic() + 10
    while gate.entered < count:
        assert time.monotonic() < deadline, f"{count} calls never entered the gate"
        time.sleep(0.02)


def test_parked_calls_neither_refuse_nor_delay_others(gated) -> None:
    _server, gate, channel = gated
    call = channel.unary_unary("/test.Gate/Pass")
    parked = [call.future(b"x", timeout=30, metadata=AUTH) for _ in range(PARKED)]
    _entered(gate, PARKED)
    assert not any(f.done() for f in parked)

    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=30)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    listed = models.ListModels(model_service_pb2.ListModelsRequest(), timeout=5, metadata=AUTH)
    assert [m.name for m in listed.models] == ["net"]
    with pytest.raises(grpc.RpcError) as refused:  # a synchronous handler runs (on the pool) and aborts
        channel.unary_unary("/test.Gate/Refuse")(b"y", timeout=5, metadata=AUTH)
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.details() == "request: refused on a pool thread"

    gate.set_open(True)
    assert [f.result(timeout=10) for f in parked] == [b"x"] * PARKED
    watch.cancel()
    gate.set_open(False)


def test_unauthenticated_calls_never_reach_the_method(gated) -> None:
    _server, gate, channel = gated
    call = channel.unary_unary("/test.Gate/Pass")
    before = gate.calls
    for metadata in (None, (("authorization", "Bearer not-the-token-0123456789"),)):
        with pytest.raises(grpc.RpcError) as refused:
            call(b"x", timeout=5, metadata=metadata)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert dict(refused.value.trailing_metadata())["www-authenticate"] == 'Bearer realm="glassbox"'
    for _ in range(3):  # a streaming method is refused the same way, before its first message
        watch = channel.unary_stream("/glassbox.v1.JobService/WatchJob")(b"", timeout=5)
        with pytest.raises(grpc.RpcError) as refused:
            next(watch)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert gate.calls == before
    gate.set_open(True)
    assert call(b"ok", timeout=10, metadata=AUTH) == b"ok"
    gate.set_open(False)
