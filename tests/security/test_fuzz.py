"""A seeded, bounded fuzz of the whole API over real gRPC: Hypothesis builds every request message of
every RPC from the proto descriptors (fuzz_messages.py), sends raw bytes that do not parse, and the
decompression-bomb corpus through every RPC that takes an image. Every answer must be OK or a
documented code that names the field in its message and in a BadRequest detail (never INTERNAL or
UNKNOWN), the server must stay SERVING, and the process' peak memory must stay bounded. Jobs the
fuzz gets accepted are cancelled at once. Run with `-s` to see how many requests of each category were
sent and the codes they got."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest
from glassbox_client._generated.glassbox.v1 import job_service_pb2, tensor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fuzz_messages import BOMB_BYTES, MALFORMED_BYTES, Rpc, every_rpc, messages
from support.image_bombs import PeakRss, watch_rss
from support.servers import RunningServer

RPCS = every_rpc()
MESSAGES_PER_RPC = 60
MALFORMED_PER_RPC = 12
CALL_TIMEOUT_SECONDS = 3.0
RSS_BOUND = 600 * 1024 * 1024
"""Peak growth of this process (server and fuzzer) over the whole fuzz."""

DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,  # the fuzzer's own deadline: the server stops the work
}
WITHOUT_FIELD = {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
"""Codes about the server's capacity or the caller's deadline rather than one field of the request."""
FIELD_FIRST = re.compile(r"^[A-Za-z_][\w]*(\[\d+\])?(\.[A-Za-z_][\w]*(\[\d+\])?)*: ")

SENT: Counter[str] = Counter()
CODES: Counter[str] = Counter()

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=MESSAGES_PER_RPC,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def names_a_field(error: grpc.RpcError) -> bool:
    """Whether an error names the request field it is about, for people (the message starts with the
    field) and for programs (a `google.rpc.BadRequest` field violation and a glassbox.v1 `ErrorInfo`)."""
    if error.code() in WITHOUT_FIELD:
        return True
    status = rpc_status.from_call(error)
    if status is None or FIELD_FIRST.match(error.details() or "") is None:
        return False
    fields, reasons = [], []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            fields += [violation.field for violation in bad_request.field_violations if violation.field]
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons += [info.reason] if info.domain == "glassbox.v1" and info.reason else []
    return bool(fields) and bool(reasons)


def assert_documented(rpc: str, error: grpc.RpcError | None) -> None:
    """`error` is None for an OK answer."""
    code = grpc.StatusCode.OK if error is None else error.code()
    CODES[code.name] += 1
    if error is None:
        return
    assert code in DOCUMENTED, f"{rpc}: {code.name} {error.details()!r}"
    assert names_a_field(error), f"{rpc}: {code.name} without a field: {error.details()!r}"


@pytest.fixture(scope="module")
def fuzzed(start_server) -> Iterator[tuple[RunningServer, PeakRss]]:
    """A server of its own (the fuzz queues and cancels jobs) and a watch on the peak memory."""
    server = start_server(jobs={"worker_threads": 1})
    with watch_rss() as rss:
        yield server, rss
    print(f"\nfuzz requests sent: {dict(sorted(SENT.items()))}")
    print(f"fuzz answers by code: {dict(sorted(CODES.items()))}")
    print(f"fuzz peak RSS growth: {rss.growth / 2**20:.0f} MiB")


def _cancel_accepted(server: RunningServer, rpc: Rpc, response: object) -> None:
    if rpc.path.endswith("/SubmitJob") and isinstance(response, bytes):
        job = job_service_pb2.SubmitJobResponse.FromString(response).job
        cancel = server.channel.unary_unary(
            "/glassbox.v1.JobService/CancelJob",
            request_serializer=job_service_pb2.CancelJobRequest.SerializeToString,
            response_deserializer=job_service_pb2.CancelJobResponse.FromString,
        )
        cancel(job_service_pb2.CancelJobRequest(job_id=job.id), timeout=30)


def call(server: RunningServer, rpc: Rpc, data: bytes, category: str) -> None:
    """Send raw request bytes and check the answer."""
    SENT[category] += 1
    try:
        if rpc.response_streaming:
            stream = server.channel.unary_stream(rpc.path)(data, timeout=CALL_TIMEOUT_SECONDS)
            for _ in stream:
                pass
            response: object = None
        else:
            response = server.channel.unary_unary(rpc.path)(data, timeout=CALL_TIMEOUT_SECONDS)
    except grpc.RpcError as error:
        assert_documented(rpc.path, error)
        return
    assert_documented(rpc.path, None)
    _cancel_accepted(server, rpc, response)


def assert_serving(server: RunningServer) -> None:
    stub = health_pb2_grpc.HealthStub(server.channel)
    status = stub.Check(health_pb2.HealthCheckRequest(), timeout=30).status
    assert status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("rpc", RPCS, ids=[r.path.rsplit(".", 1)[-1] for r in RPCS])
def test_every_generated_request_gets_a_documented_answer(fuzzed, rpc: Rpc) -> None:
    server, _ = fuzzed

    @FUZZ
    @given(message=messages(rpc.method.input_type))
    def fuzz(message: Message) -> None:
        call(server, rpc, message.SerializeToString(), f"messages {rpc.path}")

    fuzz()
    assert_serving(server)


@pytest.mark.parametrize("rpc", RPCS, ids=[r.path.rsplit(".", 1)[-1] for r in RPCS])
def test_bytes_that_do_not_parse_get_a_documented_answer(fuzzed, rpc: Rpc) -> None:
    server, _ = fuzzed

    @settings(FUZZ, max_examples=MALFORMED_PER_RPC)
    @given(data=MALFORMED_BYTES)
    def fuzz(data: bytes) -> None:
        call(server, rpc, data, f"malformed bytes {rpc.path}")

    fuzz()
    assert_serving(server)


def _image_fields(descriptor: Descriptor, depth: int = 0) -> list[list[FieldDescriptor]]:
    """Paths (lists of fields) from a request to every glassbox.v1.Image in it, two levels deep."""
    paths = []
    for field in descriptor.fields:
        if field.message_type is None:
            continue
        if field.message_type.full_name == tensor_pb2.Image.DESCRIPTOR.full_name:
            paths.append([field])
        elif depth < 2 and not field.message_type.GetOptions().map_entry:
            paths += [[field, *rest] for rest in _image_fields(field.message_type, depth + 1)]
    return paths


def _with_image(rpc: Rpc, path: list[FieldDescriptor], bomb: bytes) -> bytes:
    message = rpc.request_class()
    if path[0].name in message.DESCRIPTOR.fields_by_name and "model" in message.DESCRIPTOR.fields_by_name:
        message.model = "shapes"
    target = message
    for field in path[:-1]:
        target = getattr(target, field.name)
        if field.is_repeated:
            target = target.add()
        if "model" in target.DESCRIPTOR.fields_by_name:
            target.model = "shapes"
    last = path[-1]
    image = tensor_pb2.Image(encoded=bomb)
    if last.is_repeated:
        getattr(target, last.name).add().CopyFrom(image)
    else:
        getattr(target, last.name).CopyFrom(image)
    return message.SerializeToString()


IMAGE_PATHS = [(rpc, path) for rpc in RPCS for path in _image_fields(rpc.method.input_type)]


@pytest.mark.parametrize(
    "rpc, path",
    IMAGE_PATHS,
    ids=[f"{r.path.rsplit('/', 1)[-1]}:{'.'.join(f.name for f in p)}" for r, p in IMAGE_PATHS],
)
def test_every_bomb_through_every_image_field_is_refused(
    fuzzed, rpc: Rpc, path: list[FieldDescriptor]
) -> None:
    server, _ = fuzzed
    for bomb in BOMB_BYTES:
        SENT["bombs"] += 1
        try:
            response = server.channel.unary_unary(rpc.path)(_with_image(rpc, path, bomb), timeout=30)
        except grpc.RpcError as error:
            assert_documented(rpc.path, error)
            assert error.code() is not grpc.StatusCode.OK
            continue
        _cancel_accepted(server, rpc, response)
        raise AssertionError(f"{rpc.path} accepted a bomb in {'.'.join(f.name for f in path)}")
    assert_serving(server)


def test_memory_stayed_bounded_and_the_server_serves(fuzzed) -> None:
    server, rss = fuzzed
    assert_serving(server)
    assert rss.growth < RSS_BOUND, f"peak RSS grew by {rss.growth / 2**20:.0f} MiB"
    assert sum(SENT.values()) > 0 and st is not None
