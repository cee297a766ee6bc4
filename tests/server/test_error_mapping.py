"""The asynchronous front end's error mapping, over real gRPC through the production interceptors: domain
errors keep their code and field-first message in unary and streaming calls, and carry `google.rpc`
details clients read with `rpc_status.from_call`: an ErrorInfo with the stable reason (domain
glassbox.v1), a BadRequest naming the field, and a RetryInfo when the error says when to come back;
anything else is INTERNAL with a reference id (also in the ErrorInfo). And the per-request priority is
accepted, an unknown one refused naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import numpy as np
import pytest
from glassbox.config import load_settings
from glassbox.core.errors import InvalidArgument, NotFound, ResourceExhausted
from glassbox.core.reasons import Reason
from glassbox.server.app import GlassboxServer
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import model_service_pb2_grpc, priority_pb2, tensor_pb2
from google.rpc import code_pb2, error_details_pb2
from grpc_status import rpc_status
from support.model_repository import write_model_version

ERRORS: dict[bytes, Exception] = {
    b"invalid": InvalidArgument("must be positive, got -1", field="top_k"),
    b"busy": ResourceExhausted("the queue is full; retry later", retry_after_seconds=2.5),
    b"full": ResourceExhausted("over the memory budget"),
    b"missing": NotFound(
        "no such thing", field="model", reason=Reason.MODEL_NOT_FOUND, metadata={"model": "x"}
    ),
    b"bug": ZeroDivisionError("division by zero"),
}


async def fail(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise ERRORS[request]


async def fail_streaming(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    yield b"first"
    raise ERRORS[request]


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    root = tmp_path_factory.mktemp("repository")
    write_model_version(root, "net", "1")
    settings = load_settings(address="127.0.0.1:0", model_repository=root, metrics={"port": 0})
    server = GlassboxServer(settings)
    server.server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Errors",
                {
                    "Fail": grpc.unary_unary_rpc_method_handler(fail),
                    "FailStreaming": grpc.unary_stream_rpc_method_handler(fail_streaming),
                },
            ),
        )
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{server.start()}")
    yield channel
    channel.close()
    server.stop(grace=0)


def unary_error(channel: grpc.Channel, request: bytes) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        channel.unary_unary("/test.Errors/Fail")(request, timeout=10)
    return error.value


def streaming_error(channel: grpc.Channel, request: bytes) -> grpc.RpcError:
    stream = channel.unary_stream("/test.Errors/FailStreaming")(request, timeout=10)
    assert next(stream) == b"first"
    with pytest.raises(grpc.RpcError) as error:
        next(stream)
    return error.value


@pytest.mark.parametrize("call", [unary_error, streaming_error])
def test_domain_errors_keep_their_code_and_field_first_message(channel: grpc.Channel, call) -> None:
    invalid = call(channel, b"invalid")
    assert invalid.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert invalid.details() == "top_k: must be positive, got -1"
    missing = call(channel, b"missing")
    assert (missing.code(), missing.details()) == (grpc.StatusCode.NOT_FOUND, "model: no such thing")


def details(error: grpc.RpcError) -> dict[str, object]:
    """The status details of a failed call, unpacked by type name."""
    status = rpc_status.from_call(error)
    assert status is not None and status.code == error.code().value[0] and status.message == error.details()
    out: dict[str, object] = {}
    for detail in status.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
            message = kind()
            if detail.Unpack(message):
                out[kind.__name__] = message
    return out


@pytest.mark.parametrize("call", [unary_error, streaming_error])
def test_every_error_carries_a_reason_and_the_field(channel: grpc.Channel, call) -> None:
    invalid = details(call(channel, b"invalid"))
    assert (invalid["ErrorInfo"].reason, invalid["ErrorInfo"].domain) == ("INVALID_ARGUMENT", "glassbox.v1")
    (violation,) = invalid["BadRequest"].field_violations
    assert (violation.field, violation.description) == ("top_k", "top_k: must be positive, got -1")
    missing = details(call(channel, b"missing"))
    assert missing["ErrorInfo"].reason == "MODEL_NOT_FOUND" and dict(missing["ErrorInfo"].metadata) == {
        "model": "x"
    }
    assert missing["BadRequest"].field_violations[0].field == "model"
    full = details(call(channel, b"full"))  # no field, no delay: the reason alone
    assert set(full) == {"ErrorInfo"} and full["ErrorInfo"].reason == "RESOURCE_EXHAUSTED"
    bug = call(channel, b"bug")
    info = details(bug)["ErrorInfo"]
    assert info.reason == "INTERNAL" and info.metadata["reference"] in bug.details()


@pytest.mark.parametrize("call", [unary_error, streaming_error])
def test_resource_exhausted_says_when_to_retry(channel: grpc.Channel, call) -> None:
    busy = call(channel, b"busy")
    assert busy.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert busy.details() == "the queue is full; retry later"
    status = rpc_status.from_call(busy)
    assert status is not None and status.code == code_pb2.RESOURCE_EXHAUSTED
    assert details(busy)["RetryInfo"].retry_delay.ToNanoseconds() == 2_500_000_000

    full = call(channel, b"full")  # no delay known: no RetryInfo
    assert full.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "RetryInfo" not in details(full)


@pytest.mark.parametrize("call", [unary_error, streaming_error])
def test_unexpected_errors_are_internal_with_a_reference(channel: grpc.Channel, call) -> None:
    bug = call(channel, b"bug")
    assert bug.code() is grpc.StatusCode.INTERNAL
    assert bug.details().startswith("internal error (ref ") and "division" not in bug.details()


def test_the_request_priority_is_accepted_and_checked(channel: grpc.Channel) -> None:
    pixels = np.random.default_rng(0).random((3, 64, 64), dtype=np.float32)
    image = tensor_pb2.Image(
        pixels=tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_FLOAT32, shape=[3, 64, 64], data=pixels.tobytes())
    )
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    for priority in priority_pb2.RequestPriority.values():
        request = pb.PredictRequest(model="net", images=[image], top_k=1, priority=priority)
        assert len(stub.Predict(request, timeout=30).predictions) == 1
    with pytest.raises(grpc.RpcError) as unknown:
        stub.Predict(pb.PredictRequest(model="net", images=[image], priority=7), timeout=30)
    assert unknown.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert unknown.value.details().startswith("priority: unknown priority 7")
