"""RobustnessService: GetRobustnessHistory — translation only; the history is kept by
glassbox.robustness (the monitor writes it, a HistoryStore holds it), read on the blocking-I/O pool."""

from __future__ import annotations

import grpc
from glassbox_client._generated.glassbox.v1 import robustness_pb2 as pb
from glassbox_client._generated.glassbox.v1 import robustness_pb2_grpc

from glassbox.core.errors import InvalidArgument
from glassbox.robustness.history import HistoryStore
from glassbox.server.context import ServerContext
from glassbox.wire.robustness import history_message

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class RobustnessServicer(robustness_pb2_grpc.RobustnessServiceServicer):
    def __init__(self, context: ServerContext, history: HistoryStore) -> None:
        self._ctx = context
        self._history = history

    async def GetRobustnessHistory(
        self, request: pb.GetRobustnessHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRobustnessHistoryResponse:
        if not request.model:
            raise InvalidArgument("model is required", field="model")
        self._ctx.repository.versions(request.model)
        if not 0 <= request.limit <= MAX_LIMIT:
            raise InvalidArgument(f"must be in 0..{MAX_LIMIT}, got {request.limit}", field="limit")
        limit = request.limit or DEFAULT_LIMIT

        def history() -> pb.GetRobustnessHistoryResponse:
            records = self._history.records(request.model, request.version, limit)
            return pb.GetRobustnessHistoryResponse(records=[history_message(r) for r in records])

        return await self._ctx.blocking(history)  # the history may live in Redis
