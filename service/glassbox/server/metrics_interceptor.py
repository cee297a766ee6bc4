"""The gRPC metrics interceptor: started/handled counters, handling-time histogram, in-flight gauge.

It must be the outermost interceptor, so the status it reads after the handler is the final one —
including the codes the error interceptor sets for domain errors. A handler that returns without a
status set is OK; one whose task is cancelled (grpc.aio cancels it when the client leaves or the
deadline passes) is CANCELLED or DEADLINE_EXCEEDED. Server-streaming calls are measured until their
stream ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

import grpc

from glassbox.metrics import Metrics
from glassbox.server.interceptors import Behaviour, wrap_handler


def _grpc_type(handler: grpc.RpcMethodHandler) -> str:
    if handler.request_streaming and handler.response_streaming:
        return "bidi_stream"
    if handler.request_streaming:
        return "client_stream"
    return "server_stream" if handler.response_streaming else "unary"


def _split(method: str) -> tuple[str, str]:
    """'/glassbox.v1.ModelService/Predict' → ('glassbox.v1.ModelService', 'Predict')."""
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


def _final_code(context: grpc.aio.ServicerContext, ended: str) -> str:
    """The call's status: the code set on the context (an abort sets it), else by how the handler
    ended: "ok", "raised" (an exception grpc turns into UNKNOWN) or "left" (the task was cancelled or
    the stream closed early: the client left, its deadline passed, or the server stopped)."""
    code = context.code()
    if code is not None:
        return code.name
    if ended == "raised":
        return grpc.StatusCode.UNKNOWN.name
    if ended == "left":
        remaining = context.time_remaining()
        expired = remaining is not None and remaining <= 0
        return (grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED).name
    return grpc.StatusCode.OK.name


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Records the conventional `grpc_server_*` metrics for every RPC."""

    def __init__(self, metrics: Metrics, executor: Executor | None = None) -> None:
        self._metrics = metrics
        self._executor = executor

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, name = _split(handler_call_details.method)
        labels = (_grpc_type(handler), service, name)
        return wrap_handler(
            handler,
            handler_call_details.method,
            lambda behaviour, _method, streaming: self._measure(behaviour, labels, streaming),
            self._executor,
        )

    def _measure(self, behaviour: Behaviour, labels: tuple[str, str, str], streaming: bool) -> Behaviour:
        metrics = self._metrics

        def begin() -> float:
            metrics.grpc_started.labels(*labels).inc()
            metrics.grpc_in_flight.labels(*labels).inc()
            return time.perf_counter()

        def end(context: grpc.aio.ServicerContext, started: float, ended: str) -> None:
            code = _final_code(context, ended)
            metrics.grpc_in_flight.labels(*labels).dec()
            metrics.grpc_handled.labels(*labels, code).inc()
            metrics.grpc_handling_seconds.labels(*labels, code).observe(time.perf_counter() - started)

        if streaming:

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                started, ended = begin(), "raised"
                try:
                    async with contextlib.aclosing(behaviour(request, context)) as responses:
                        async for response in responses:
                            yield response
                    ended = "ok"
                except (GeneratorExit, asyncio.CancelledError):
                    ended = "left"
                    raise
                finally:
                    end(context, started, ended)

            return stream

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started, ended = begin(), "raised"
            try:
                response = await behaviour(request, context)
                ended = "ok"
                return response
            except asyncio.CancelledError:
                ended = "left"
                raise
            finally:
                end(context, started, ended)

        return unary
