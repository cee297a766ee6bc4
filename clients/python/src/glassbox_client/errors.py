"""Typed exceptions for failed calls: one class per gRPC status code a caller may want to handle.

The server sends every error with `google.rpc.Status` details (in the `grpc-status-details-bin`
trailer), and every exception exposes them typed:

- `reason`: the stable `google.rpc.ErrorInfo` reason (domain `glassbox.v1`), e.g. MODEL_NOT_FOUND,
  METHOD_NOT_SUPPORTED, OVERLOADED, JOB_NOT_ON_THIS_REPLICA (docs/operations.md lists them all, and
  `GlassboxClient.server_info().error_reasons` too), and `metadata` (e.g. `{"model": "shapes"}`);
- `field_violations` (`google.rpc.BadRequest`) and `field`, the first violation's field path, so
  `except InvalidArgumentError as e: print(e.field)` tells what to fix;
- `retry_after`: seconds from a `google.rpc.RetryInfo` (on overload), else None.

Nothing is parsed out of the message text. A job's failure (`Job.error_status`) has the same form.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from glassbox_client.descriptors import descriptor_of

STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""Trailing metadata key of the `google.rpc.Status` with the error's details."""
ERROR_DOMAIN = "glassbox.v1"


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field: its path as the request spells it (e.g. `images[0].encoded`) and why."""

    field: str
    description: str


@dataclass(frozen=True)
class ErrorStatus:
    """A `google.rpc.Status` read: the code, the message, and its details typed."""

    code: grpc.StatusCode
    message: str
    reason: str | None = None
    domain: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()
    retry_after: float | None = None

    @property
    def field(self) -> str | None:
        """The first bad field's path, None when the error is not about a field."""
        return self.field_violations[0].field if self.field_violations else None

    @classmethod
    def from_proto(cls, status: status_pb2.Status) -> ErrorStatus:
        code = next((c for c in grpc.StatusCode if c.value[0] == status.code), grpc.StatusCode.UNKNOWN)
        reason = domain = retry = None
        metadata: dict[str, str] = {}
        violations: list[FieldViolation] = []
        for detail in status.details:
            if detail.Is(descriptor_of(error_details_pb2.ErrorInfo)):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Is(descriptor_of(error_details_pb2.BadRequest)):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
            elif detail.Is(descriptor_of(error_details_pb2.RetryInfo)):
                info_retry = error_details_pb2.RetryInfo()
                detail.Unpack(info_retry)
                retry = info_retry.retry_delay.seconds + info_retry.retry_delay.nanos / 1e9
        return cls(code, status.message, reason, domain, metadata, tuple(violations), retry)


class GlassboxError(Exception):
    """A call failed. `code` is the gRPC status, `message` the server's text; `reason`, `metadata`,
    `field_violations`, `field` and `retry_after` come from the status details (see the module doc)."""

    def __init__(
        self, code: grpc.StatusCode, message: str, *, method: str = "", status: ErrorStatus | None = None
    ) -> None:
        self.code = code
        self.message = message
        self.method = method
        self.status = status or ErrorStatus(code, message)
        self.reason: str | None = self.status.reason
        self.metadata: dict[str, str] = self.status.metadata
        self.field_violations: tuple[FieldViolation, ...] = self.status.field_violations
        self.field: str | None = self.status.field
        self.retry_after: float | None = self.status.retry_after
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
    status = rich_status(exc)
    return ERROR_BY_CODE.get(code, GlassboxError)(code, message, method=method, status=status)


def error_from_status(status: ErrorStatus, method: str = "") -> GlassboxError:
    """The typed exception for a status read elsewhere (e.g. a job's `error_status`)."""
    return ERROR_BY_CODE.get(status.code, GlassboxError)(
        status.code, status.message, method=method, status=status
    )


def rich_status(exc: grpc.RpcError) -> ErrorStatus | None:
    """The `google.rpc.Status` in the call's trailing metadata, typed; None when the server sent none."""
    # types-grpcio types `RpcError.trailing_metadata()` as objects with `.key` and `.value`; the calls'
    # errors return (key, value) pairs (a tuple of them, or grpc.aio's Metadata).
    metadata = cast(
        "Iterable[tuple[str, str | bytes]] | None",
        exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None,
    )
    for key, value in metadata or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            return ErrorStatus.from_proto(status_pb2.Status.FromString(value))
        except DecodeError:
            return None
    return None
