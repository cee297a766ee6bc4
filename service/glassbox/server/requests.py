"""Request bytes that do not parse as the request message become INVALID_ARGUMENT naming the message.

grpc calls a handler's request deserializer before any interceptor's wrapper runs, and answers a
deserializer's exception with INTERNAL "Exception deserializing request!", which blames the server for
the caller's bytes. `RequestParsingInterceptor` (the innermost interceptor) swaps every handler's
deserializer for one that returns an `UnparsableRequest` instead of raising, and wraps the behaviour
so that such a request ends the call with INVALID_ARGUMENT before the servicer sees it. The
authentication interceptor, further out, still refuses an unauthenticated call first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import grpc

from glassbox.core.errors import InvalidArgument
from glassbox.core.reasons import Reason
from glassbox.server.errors import abort_for
from glassbox.server.interceptors import Behaviour, wrap_handler


@dataclass(frozen=True)
class UnparsableRequest:
    """What the tolerant deserializer returns for bytes that do not parse."""

    message_type: str
    reason: str


def message_type_name(deserializer: Callable[[bytes], Any], method: str) -> str:
    """The full name of the message a deserializer parses (`glassbox.v1.GetJobRequest`), else the
    method's request."""
    message_class = getattr(deserializer, "__self__", None)
    descriptor = getattr(message_class, "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", None) or f"the request of {method}"


def tolerant(deserializer: Callable[[bytes], Any], message_type: str) -> Callable[[bytes], Any]:
    """`deserializer` that returns an `UnparsableRequest` instead of raising."""

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError, invalid UTF-8, nesting too deep: all the caller's bytes
            return UnparsableRequest(message_type, str(exc) or type(exc).__name__)

    return deserialize


async def _abort(context: grpc.aio.ServicerContext, request: UnparsableRequest) -> None:
    """End the call as the error interceptor ends any InvalidArgument (with its status details)."""
    error = InvalidArgument(
        f"the bytes do not parse as {request.message_type}: {request.reason}",
        field="request",
        reason=Reason.MALFORMED_REQUEST,
        metadata={"message_type": request.message_type},
    )
    await abort_for(context, error, request.message_type)


def _refusing_unparsable(request_streaming: bool) -> Callable[[Behaviour, str, bool], Behaviour]:
    def wrap(behaviour: Behaviour, method: str, response_streaming: bool) -> Behaviour:
        if request_streaming:

            async def checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
                async for request in requests:
                    if isinstance(request, UnparsableRequest):
                        await _abort(context, request)
                    yield request

            if response_streaming:

                async def stream_stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                    async for response in behaviour(checked(requests, context), context):
                        yield response

                return stream_stream

            async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                return await behaviour(checked(requests, context), context)

            return stream_unary

        if response_streaming:

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if isinstance(request, UnparsableRequest):
                    await _abort(context, request)
                async for response in behaviour(request, context):
                    yield response

            return unary_stream

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, UnparsableRequest):
                await _abort(context, request)
            return await behaviour(request, context)

        return unary_unary

    return wrap


class RequestParsingInterceptor(grpc.aio.ServerInterceptor):
    """Unparsable request bytes → INVALID_ARGUMENT naming the message type (see the module docstring)."""

    def __init__(self, executor: Executor | None = None) -> None:
        self._executor = executor

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = handler_call_details.method
        wrapped = wrap_handler(
            handler, method, _refusing_unparsable(handler.request_streaming), self._executor
        )
        assert wrapped is not None
        message_type = message_type_name(handler.request_deserializer, method)
        deserializer = tolerant(handler.request_deserializer, message_type)
        # grpc builds handlers as namedtuples; its stubs declare an abstract class without `_replace`.
        return wrapped._replace(request_deserializer=deserializer)  # type: ignore[attr-defined]
