"""The one place where domain errors become gRPC status codes.

Domain errors keep their message (it names the bad field). A ResourceExhausted that says when to come
back (`retry_after_seconds`, set by the compute scheduler's admission) also carries a
`google.rpc.RetryInfo` detail in the rich status (`grpc-status-details-bin`), which clients read with
`grpc_status.rpc_status.from_call`. A Cancelled error at the call's deadline (the compute scheduler
stops work whose deadline passed) is DEADLINE_EXCEEDED, as the client's own deadline would say.
Anything unexpected becomes INTERNAL with a generic message and a reference id; the traceback goes
only to the log.
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
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from glassbox.core import errors
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


def rich_status(code: grpc.StatusCode, message: str, retry_after_seconds: float) -> grpc.Status:
    """A status with a `google.rpc.RetryInfo` detail saying when to retry."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(round(retry_after_seconds * 1e9))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))


async def abort_for(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> NoReturn:
    """End the call with the status `exc` maps to (always raises grpc's AbortError)."""
    if isinstance(exc, errors.GlassboxError):
        code, message = status_for(exc), str(exc)
        if code is grpc.StatusCode.CANCELLED and _deadline_passed(context):
            code = grpc.StatusCode.DEADLINE_EXCEEDED
        delay = retry_delay(exc)
        if delay is not None:
            await context.abort_with_status(rich_status(code, message, delay))
        await context.abort(code, message)
    reference = uuid.uuid4().hex[:12]
    log.error("internal error in %s (ref %s)", method, reference, exc_info=exc)
    await context.abort(
        grpc.StatusCode.INTERNAL, f"internal error (ref {reference}); the server log has the details"
    )
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
