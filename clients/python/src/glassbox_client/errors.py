"""Typed exceptions for failed calls: one class per gRPC status code a caller may want to handle.

Every exception carries the status `code`, the server's `message`, and `field`: the request field the
server named (the service prefixes its messages with `<field>: ` whenever a request field is at
fault), so `except InvalidArgumentError as e: print(e.field)` tells what to fix.
"""

from __future__ import annotations

import re

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""Trailing metadata key of the `google.rpc.Status` with the error's details."""

_SEGMENT = r"[A-Za-z_]\w*(?:\[\d+\])?"
_FIELD_PREFIX = re.compile(rf"^(?P<field>{_SEGMENT}(?:\.{_SEGMENT})*): ", re.S)


class GlassboxError(Exception):
    """A call failed. `code` is the gRPC status, `message` the server's text, `field` the request
    field at fault (None when the error is not about one field)."""

    def __init__(self, code: grpc.StatusCode, message: str, *, method: str = "") -> None:
        self.code = code
        self.message = message
        self.method = method
        match = _FIELD_PREFIX.match(message)
        self.field: str | None = match.group("field") if match else None
        where = f" in {method}" if method else ""
        super().__init__(f"{code.name}{where}: {message}")


class InvalidArgumentError(GlassboxError):
    """The request is wrong (a bad value, shape, range or name); `field` names the part to fix."""


class NotFoundError(GlassboxError):
    """A named model, version or job does not exist."""


class FailedPreconditionError(GlassboxError):
    """Well formed, but the target cannot do it (e.g. a gradient method on an ONNX model)."""


class ResourceExhaustedError(GlassboxError):
    """A server limit was hit (the call could not finish before its deadline, a full queue or memory
    budget, the message size); retry later or elsewhere. `retry_after` is the server's advice in seconds
    (its `google.rpc.RetryInfo`), None when it gave none."""

    retry_after: float | None = None


class UnavailableError(GlassboxError):
    """The server cannot be reached or cannot serve now; the client already retried with backoff."""


class DeadlineExceededError(GlassboxError):
    """The call's deadline passed before the server answered (raise `timeout=` for long methods)."""


class UnauthenticatedError(GlassboxError):
    """No token, or a wrong one: pass `token=` or set GLASSBOX_TOKEN."""


class PermissionDeniedError(GlassboxError):
    """The caller is known but not allowed to do this."""


class CancelledError(GlassboxError):
    """The call was cancelled (by the caller, or the server on shutdown)."""


class InternalError(GlassboxError):
    """The server failed unexpectedly; the message has a reference id for its log."""


class UnimplementedError(GlassboxError):
    """The server does not implement this RPC (an older server version)."""


ERROR_BY_CODE: dict[grpc.StatusCode, type[GlassboxError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.CANCELLED: CancelledError,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
}


def error_from_rpc(exc: grpc.RpcError, method: str = "") -> GlassboxError:
    """The typed exception for a failed call (sync `grpc.RpcError` or asyncio `grpc.aio.AioRpcError`)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message = (exc.details() if hasattr(exc, "details") else None) or str(exc)
    error = ERROR_BY_CODE.get(code, GlassboxError)(code, message, method=method)
    if isinstance(error, ResourceExhaustedError):
        error.retry_after = retry_after(exc)
    return error


def retry_after(exc: grpc.RpcError) -> float | None:
    """The retry delay of a `google.rpc.RetryInfo` detail in the call's trailing metadata, if any."""
    metadata = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in metadata or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None
