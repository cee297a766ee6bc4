"""The gRPC metrics interceptor: started/handled counters, handling-time histogram, in-flight gauge.

It must be the outermost interceptor, so the status it reads after the handler is the final one —
including the codes the error interceptor sets for domain errors. A handler that returns without a
status set is OK, unless the call was cancelled or ran out of time meanwhile. Server-streaming calls
are measured until their stream ends, however it ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
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


def _final_code(context: grpc.ServicerContext, raised: bool) -> str:
    code = context.code()
    if code is not None:
        return code.name
    if raised:
        return grpc.StatusCode.UNKNOWN.name
    if not context.is_active():
        remaining = context.time_remaining()
        expired = remaining is not None and remaining <= 0
        return (grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED).name
    return grpc.StatusCode.OK.name


class MetricsInterceptor(grpc.ServerInterceptor):
    """Records the conventional `grpc_server_*` metrics for every RPC."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def intercept_service(self, continuation: Any, handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        service, name = _split(handler_call_details.method)
        labels = (_grpc_type(handler), service, name)
        return wrap_handler(
            handler,
            handler_call_details.method,
            lambda behaviour, _method, streaming: self._measure(behaviour, labels, streaming),
        )

    def _measure(self, behaviour: Behaviour, labels: tuple[str, str, str], streaming: bool) -> Behaviour:
        metrics = self._metrics

        def begin() -> float:
            metrics.grpc_started.labels(*labels).inc()
            metrics.grpc_in_flight.labels(*labels).inc()
            return time.perf_counter()

        def end(context: grpc.ServicerContext, started: float, raised: bool) -> None:
            code = _final_code(context, raised)
            metrics.grpc_in_flight.labels(*labels).dec()
            metrics.grpc_handled.labels(*labels, code).inc()
            metrics.grpc_handling_seconds.labels(*labels, code).observe(time.perf_counter() - started)

        if streaming:

            def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                started, raised = begin(), True
                try:
                    yield from behaviour(request, context)
                    raised = False
                except GeneratorExit:
                    raised = False
                    raise
                finally:
                    end(context, started, raised)

            return stream

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            started, raised = begin(), True
            try:
                response = behaviour(request, context)
                raised = False
                return response
            finally:
                end(context, started, raised)

        return unary
