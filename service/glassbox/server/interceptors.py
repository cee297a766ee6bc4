"""Helpers to build server interceptors that wrap every RPC's behaviour, whatever its cardinality."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Behaviour = Callable[[Any, grpc.ServicerContext], Any]
BehaviourWrapper = Callable[[Behaviour, str, bool], Behaviour]


def wrap_handler(handler: grpc.RpcMethodHandler | None, method: str, wrap: BehaviourWrapper) -> Any:
    """Return `handler` with its behaviour replaced by `wrap(behaviour, method, response_streaming)`."""
    if handler is None:
        return None
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            wrap(handler.unary_unary, method, False),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            wrap(handler.unary_stream, method, True),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            wrap(handler.stream_unary, method, False),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return grpc.stream_stream_rpc_method_handler(
        wrap(handler.stream_stream, method, True),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class WrappingInterceptor(grpc.ServerInterceptor):
    """A server interceptor defined by one behaviour wrapper."""

    def __init__(self, wrap: BehaviourWrapper) -> None:
        self._wrap = wrap

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails) -> Any:
        return wrap_handler(continuation(handler_call_details), handler_call_details.method, self._wrap)
