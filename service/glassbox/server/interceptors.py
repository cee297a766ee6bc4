"""Helpers to build `grpc.aio` server interceptors that wrap every RPC's behaviour, whatever its shape.

A behaviour reaches an interceptor in one of the shapes grpc.aio accepts: a coroutine function (unary
response, or a streaming handler that writes with `await context.write(...)`, as grpc-health's Watch
does), an async generator function (streaming response), or a plain function / generator function (the
synchronous stack). `wrap_handler` first brings it to one of two shapes, so a wrapper deals with only
those:

- unary response: `async def behaviour(request, context) -> response`
- streaming response: an async generator function `behaviour(request, context)`; a writer-style
  coroutine becomes an async generator that awaits it and yields nothing itself (its writes go out
  through the context, as before).

A synchronous behaviour runs on the server's blocking-I/O pool, never on the event loop: a unary one in
one pool task, a generator one item per pool task, with a context whose `abort` works from that thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Executor
from typing import Any, NoReturn, TypeVar

import grpc

T = TypeVar("T")

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]
"""An async behaviour: a coroutine function (unary) or an async generator function (streaming)."""
BehaviourWrapper = Callable[[Behaviour, str, bool], Behaviour]
"""`wrap(behaviour, method, response_streaming) -> behaviour` of the same shape."""

DONE = object()
"""What `PooledIterator.next()` returns at the end."""


def _handler_type(
    handler: grpc.RpcMethodHandler,
) -> tuple[Callable[..., grpc.RpcMethodHandler], Callable[..., Any], bool]:
    """(the handler factory of its cardinality, its behaviour, whether responses stream)."""
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler, handler.unary_unary, False
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler, handler.unary_stream, True
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler, handler.stream_unary, False
    behaviour = handler.stream_stream
    assert behaviour is not None  # a handler has exactly one of the four behaviours
    return grpc.stream_stream_rpc_method_handler, behaviour, True


def wrap_handler(
    handler: grpc.RpcMethodHandler | None, method: str, wrap: BehaviourWrapper, executor: Executor | None
) -> grpc.RpcMethodHandler | None:
    """`handler` with its behaviour made async (see the module docstring) and replaced by
    `wrap(behaviour, method, response_streaming)`."""
    if handler is None:
        return None
    factory, behaviour, streaming = _handler_type(handler)
    normalised = as_async(behaviour, streaming, executor)
    return factory(
        wrap(normalised, method, streaming),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def as_async(behaviour: Callable[..., Any], streaming: bool, executor: Executor | None) -> Behaviour:
    """The behaviour in one of the two async shapes; async generators and unary coroutines unchanged."""
    if streaming:
        if inspect.isasyncgenfunction(behaviour):
            return behaviour
        if inspect.iscoroutinefunction(behaviour):
            return _writer_as_generator(behaviour)
        return _sync_stream(behaviour, executor)
    if inspect.iscoroutinefunction(behaviour):
        return behaviour
    return _sync_unary(behaviour, executor)


def _writer_as_generator(behaviour: Callable[..., Awaitable[None]]) -> Behaviour:
    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await behaviour(request, context)
        return
        yield  # an async generator that yields nothing: the behaviour writes through the context

    return stream


async def in_pool(executor: Executor | None, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`function(*args, **kwargs)` on `executor` (in this task's context variables), awaited from the
    event loop."""
    call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(executor, call)


def _sync_unary(behaviour: Callable[..., Any], executor: Executor | None) -> Behaviour:
    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await in_pool(executor, behaviour, request, SyncContext(context))

    return unary


def _sync_stream(behaviour: Callable[..., Iterator[Any]], executor: Executor | None) -> Behaviour:
    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        sync_context = SyncContext(context)
        items = PooledIterator(executor, lambda: iter(behaviour(request, sync_context)))
        try:
            while (item := await items.next()) is not DONE:
                yield item
        finally:
            items.close()

    return stream


class PooledIterator:
    """A blocking iterator stepped on a pool thread, one `next()` per pool task, so waiting for an item
    holds a pool thread but never the event loop. `close()` closes a generator on the pool once the
    step in progress (if any) has returned: a generator cannot be closed while it runs."""

    def __init__(self, executor: Executor | None, source: Callable[[], Iterator[Any]]) -> None:
        self._executor = executor
        self._source = source
        self._iterator: Iterator[Any] | None = None
        self._step: asyncio.Future[Any] | None = None
        self._closed = False

    def _next(self) -> Any:
        if self._iterator is None:
            self._iterator = self._source()
        return next(self._iterator, DONE)

    async def next(self) -> Any:
        """The next item, or DONE at the end."""
        if self._closed:
            return DONE
        self._step = asyncio.ensure_future(in_pool(self._executor, self._next))
        try:
            return await asyncio.shield(self._step)
        finally:
            if self._step.done():
                self._step = None

    def close(self) -> None:
        """Close the iterator (on the pool, after the running step); never blocks the caller."""
        if self._closed:
            return
        self._closed = True
        if self._step is not None and not self._step.done():
            self._step.add_done_callback(self._close_after)
        else:
            self._close_now()

    def _close_after(self, step: asyncio.Future[Any]) -> None:
        if not step.cancelled():
            step.exception()  # retrieved: nobody awaits this step any more
        self._close_now()

    def _close_now(self) -> None:
        close = getattr(self._iterator, "close", None)
        if close is None:
            return
        try:
            if self._executor is not None:
                self._executor.submit(close)
                return
        except RuntimeError:  # the pool is shut down: the server is stopping
            pass
        close()


class SyncContext:
    """An aio servicer context as synchronous code on a pool thread sees it: `abort` raises there, the
    rest is the aio context's (most of its methods are plain, thread-safe reads and writes)."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context
        self._loop = asyncio.get_running_loop()

    def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        future = asyncio.run_coroutine_threadsafe(
            self._context.abort(code, details, trailing_metadata), self._loop
        )
        raise future.exception()  # type: ignore[misc]  # always the AbortError

    def abort_with_status(self, status: grpc.Status) -> NoReturn:
        future = asyncio.run_coroutine_threadsafe(self._context.abort_with_status(status), self._loop)
        raise future.exception()  # type: ignore[misc]

    def is_active(self) -> bool:
        return not (self._context.done() or self._context.cancelled())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """A server interceptor defined by one behaviour wrapper."""

    def __init__(self, wrap: BehaviourWrapper, executor: Executor | None = None) -> None:
        self._wrap = wrap
        self._executor = executor

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        return wrap_handler(handler, handler_call_details.method, self._wrap, self._executor)
