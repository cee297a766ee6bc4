"""Concurrency limit per RPC method: a call over the limit is refused at once, never queued.

gRPC Python queues every call it cannot run on its thread pool without bound, so a burst of slow
attributions would otherwise starve cheap calls and health checks (and a kubelet would then restart
a pod that is merely busy). Refusing early with RESOURCE_EXHAUSTED keeps latency bounded and tells
the caller, or its load balancer, to go elsewhere or come back later. The health service is exempt.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc

from glassbox.core.errors import ResourceExhausted
from glassbox.server.errors import status_for
from glassbox.server.interceptors import Behaviour, WrappingInterceptor

EXEMPT_PREFIXES = ("/grpc.health.v1.Health/",)


class MethodSlots:
    """A fixed number of slots per method name, taken without waiting."""

    def __init__(self, per_method: int) -> None:
        self.per_method = per_method
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def _semaphore(self, method: str) -> threading.BoundedSemaphore:
        with self._lock:
            if method not in self._semaphores:
                self._semaphores[method] = threading.BoundedSemaphore(self.per_method)
            return self._semaphores[method]

    def try_acquire(self, method: str) -> bool:
        return self._semaphore(method).acquire(blocking=False)

    def release(self, method: str) -> None:
        self._semaphore(method).release()


def _refuse(context: grpc.ServicerContext, method: str, limit: int) -> None:
    error = ResourceExhausted(
        f"{method} already has {limit} calls running, the limit per method "
        "(limits.max_concurrent_calls_per_method); retry later or on another replica"
    )
    context.abort(status_for(error), str(error))


def _limited(slots: MethodSlots) -> Any:
    def wrap(behaviour: Behaviour, method: str, streaming: bool) -> Behaviour:
        if method.startswith(EXEMPT_PREFIXES):
            return behaviour

        if streaming:

            def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                if not slots.try_acquire(method):
                    _refuse(context, method, slots.per_method)
                try:
                    yield from behaviour(request, context)
                finally:
                    slots.release(method)

            return stream

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            if not slots.try_acquire(method):
                _refuse(context, method, slots.per_method)
            try:
                return behaviour(request, context)
            finally:
                slots.release(method)

        return unary

    return wrap


def concurrency_limit_interceptor(max_calls_per_method: int) -> grpc.ServerInterceptor:
    """Refuses a call with RESOURCE_EXHAUSTED when its method already runs `max_calls_per_method` calls."""
    return WrappingInterceptor(_limited(MethodSlots(max_calls_per_method)))
