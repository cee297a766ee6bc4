"""The one place where domain errors become gRPC status codes and rich `google.rpc.Status` details.

Every error status carries, in `grpc-status-details-bin` (read with `grpc_status.rpc_status.from_call`
or any gRPC library's status-details support):

- `google.rpc.ErrorInfo`: the stable `reason` (core/reasons.py, docs/operations.md), domain
  `glassbox.v1`, and string metadata (the model, version, job id, ... it is about);
- `google.rpc.BadRequest` with one `FieldViolation` when the error names a request field (the field
  path as the request spells it, e.g. `images[0].encoded`, and the message);
- `google.rpc.RetryInfo` when the error says when to come back (the compute scheduler's admission).

The message text stays as before (`<field>: <message>`), for people. A Cancelled error at the call's
deadline (the compute scheduler stops work whose deadline passed) is DEADLINE_EXCEEDED, as the client's
own deadline would say. Anything unexpected becomes INTERNAL with a generic message and a reference id
(also in ErrorInfo metadata `reference`); the traceback goes only to the log. `Job.error_status` is
built here too, by `status_proto`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from glassbox.core import errors
from glassbox.core.reasons import ERROR_DOMAIN, Reason
from glassbox.server.interceptors import Behaviour, WrappingInterceptor

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.GlassboxError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Cancelled: grpc.StatusCode.CANCELLED,
}


def status_for(error: errors.GlassboxError) -> grpc.StatusCode:
    """The gRPC code for a domain error (its most specific registered class)."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return grpc.StatusCode.INTERNAL


DEADLINE_SLACK_SECONDS = 0.05
"""A Cancelled error raised this close to the call's deadline was caused by it (the compute scheduler
stops a call at its deadline, which it computed from the same clock a moment earlier)."""


def retry_delay(error: errors.GlassboxError) -> float | None:
    """How long the client should wait before retrying, when the error says so."""
    seconds = getattr(error, "retry_after_seconds", None)
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(0.0, float(seconds))


def status_proto(
    code: grpc.StatusCode,
    message: str,
    *,
    reason: Reason,
    field: str | None = None,
    metadata: dict[str, str] | None = None,
    retry_after_seconds: float | None = None,
) -> status_pb2.Status:
    """A `google.rpc.Status` with the ErrorInfo, BadRequest and RetryInfo details described above."""
    details: list[Message] = [
        error_details_pb2.ErrorInfo(reason=reason.value, domain=ERROR_DOMAIN, metadata=metadata or {})
    ]
    if field:
        violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=message)
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    if retry_after_seconds is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(round(retry_after_seconds * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(code=code.value[0], message=message)
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return status


def error_status(error: errors.GlassboxError, code: grpc.StatusCode | None = None) -> status_pb2.Status:
    """The rich status of a domain error (its own code unless `code` overrides it)."""
    code = code or status_for(error)
    reason = error.reason
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        reason = Reason.DEADLINE_EXCEEDED
    elif code is grpc.StatusCode.INTERNAL:
        reason = Reason.INTERNAL
    return status_proto(
        code,
        str(error),
        reason=reason,
        field=error.field,
        metadata=error.metadata,
        retry_after_seconds=retry_delay(error),
    )


async def abort_for(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> NoReturn:
    """End the call with the status `exc` maps to (always raises grpc's AbortError)."""
    if isinstance(exc, errors.GlassboxError):
        code = status_for(exc)
        if code is grpc.StatusCode.CANCELLED and _deadline_passed(context):
            code = grpc.StatusCode.DEADLINE_EXCEEDED
        await context.abort_with_status(rpc_status.to_status(error_status(exc, code)))
    reference = uuid.uuid4().hex[:12]
    log.error("internal error in %s (ref %s)", method, reference, exc_info=exc)
    message = f"internal error (ref {reference}); the server log has the details"
    status = status_proto(
        grpc.StatusCode.INTERNAL, message, reason=Reason.INTERNAL, metadata={"reference": reference}
    )
    await context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


def _deadline_passed(context: grpc.aio.ServicerContext) -> bool:
    remaining = context.time_remaining()
    return remaining is not None and remaining <= DEADLINE_SLACK_SECONDS


def _map_errors(behaviour: Behaviour, method: str, streaming: bool) -> Behaviour:
    if streaming:

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async with contextlib.aclosing(behaviour(request, context)) as responses:
                    async for response in responses:
                        yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await abort_for(context, exc, method)

        return stream

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort_for(context, exc, method)

    return unary


def error_interceptor(executor: Executor | None = None) -> grpc.aio.ServerInterceptor:
    """Maps domain errors to status codes and hides internal errors behind a reference id."""
    return WrappingInterceptor(_map_errors, executor)
