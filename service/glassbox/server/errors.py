"""The one place where domain errors become gRPC status codes.

Domain errors keep their message (it names the bad field). Anything unexpected becomes INTERNAL with
a generic message and a reference id; the traceback goes only to the log.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import grpc

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


def _abort(context: grpc.ServicerContext, exc: Exception, method: str) -> None:
    if isinstance(exc, errors.GlassboxError):
        context.abort(status_for(exc), str(exc))
    reference = uuid.uuid4().hex[:12]
    log.error("internal error in %s (ref %s)", method, reference, exc_info=exc)
    context.abort(
        grpc.StatusCode.INTERNAL, f"internal error (ref {reference}); the server log has the details"
    )


def _map_errors(behaviour: Behaviour, method: str, streaming: bool) -> Behaviour:
    if streaming:

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from behaviour(request, context)
            except Exception as exc:
                if _is_abort(exc, context):
                    raise
                _abort(context, exc, method)

        return stream

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behaviour(request, context)
        except Exception as exc:
            if _is_abort(exc, context):
                raise
            _abort(context, exc, method)

    return unary


def _is_abort(exc: Exception, context: grpc.ServicerContext) -> bool:
    """context.abort() raises a bare Exception after setting the code; let it through untouched."""
    return type(exc) is Exception and context.code() is not None


def error_interceptor() -> grpc.ServerInterceptor:
    """Maps domain errors to status codes and hides internal errors behind a reference id."""
    return WrappingInterceptor(_map_errors)
