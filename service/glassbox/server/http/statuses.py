"""gRPC status → HTTP response, the way gRPC-JSON transcoding gateways do it.

The HTTP status comes from the standard mapping of google/rpc/code.proto; the body is the
`google.rpc.Status` in proto3 JSON (`{"code": 3, "message": "...", "details": [...]}`) with the same
details the gRPC call's `grpc-status-details-bin` trailer carries (RetryInfo, BadRequest,
ErrorInfo, ...: whatever the server attaches appears here without the gateway knowing the type). A
RetryInfo also becomes a `Retry-After` header.
"""

from __future__ import annotations

import base64
import math

import grpc
from google.protobuf import any_pb2, json_format
from google.rpc import error_details_pb2, status_pb2

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
DETAILS_TRAILER = "grpc-status-details-bin"


def status_of(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The call's rich status when the server sent one, else one made of its code and message."""
    for key, value in error.trailing_metadata() or ():
        if key == DETAILS_TRAILER and isinstance(value, bytes):
            rich = status_pb2.Status.FromString(value)
            if rich.code == error.code().value[0]:
                return rich
    return status_pb2.Status(code=error.code().value[0], message=error.details() or "")


def bad_request(field: str, description: str, code: grpc.StatusCode) -> status_pb2.Status:
    """A status for a request the gateway refused itself, with a BadRequest.FieldViolation detail."""
    violation = error_details_pb2.BadRequest(
        field_violations=[error_details_pb2.BadRequest.FieldViolation(field=field, description=description)]
    )
    detail = any_pb2.Any()
    detail.Pack(violation)
    return status_pb2.Status(code=code.value[0], message=f"{field}: {description}", details=[detail])


def simple(code: grpc.StatusCode, message: str) -> status_pb2.Status:
    return status_pb2.Status(code=code.value[0], message=message)


def http_status(status: status_pb2.Status) -> int:
    code = next((c for c in grpc.StatusCode if c.value[0] == status.code), grpc.StatusCode.UNKNOWN)
    return HTTP_STATUS[code]


def status_json(status: status_pb2.Status) -> dict:
    """The proto3 JSON form; a detail of a type this process does not know is kept as base64 bytes."""
    body: dict = {"code": status.code, "message": status.message, "details": []}
    for detail in status.details:
        try:
            body["details"].append(json_format.MessageToDict(detail))
        except (json_format.Error, TypeError, KeyError):
            body["details"].append(
                {"@type": detail.type_url, "value": base64.b64encode(detail.value).decode()}
            )
    return body


def retry_after_header(status: status_pb2.Status) -> str | None:
    """Seconds to wait (rounded up) from a RetryInfo detail, for the Retry-After header."""
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):  # False for a detail of another type
            return str(max(0, math.ceil(info.retry_delay.ToNanoseconds() / 1e9)))
    return None
