"""Unary calls on one service's stub with the client's deadline and token, errors as GlassboxError:
`ServiceCalls` for the synchronous client, `AsyncServiceCalls` (awaitable) for the asyncio one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from glassbox_client.errors import error_from_rpc


class _StubCalls:
    """A stub with the client's metadata (token) and default deadline; `stub` and `metadata` stay at
    hand for streaming calls."""

    def __init__(self, stub: Any, metadata: Callable[[], tuple], default_timeout: float) -> None:
        self.stub = stub
        self.metadata = metadata
        self.default_timeout = default_timeout


class ServiceCalls(_StubCalls):
    """`calls(name, request, timeout)` runs the stub's method `name`."""

    def __call__(self, name: str, request: Any, timeout: float | None = None) -> Any:
        try:
            rpc = getattr(self.stub, name)
            return rpc(request, timeout=timeout or self.default_timeout, metadata=self.metadata())
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, name) from None


class AsyncServiceCalls(_StubCalls):
    """`await calls(name, request, timeout)` runs the grpc.aio stub's method `name`."""

    async def __call__(self, name: str, request: Any, timeout: float | None = None) -> Any:
        try:
            rpc = getattr(self.stub, name)
            return await rpc(request, timeout=timeout or self.default_timeout, metadata=self.metadata())
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, name) from None
