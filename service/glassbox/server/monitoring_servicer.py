"""MonitoringService: GetExplanationHistory and GetExplanationChanges — translation and checks of the
request only; the history is kept by glassbox.monitoring (the monitor writes it) and read on the
blocking-I/O pool, the change report runs through the compute scheduler at background priority."""

from __future__ import annotations

import grpc
from glassbox_client._generated.glassbox.v1 import monitoring_pb2 as pb
from glassbox_client._generated.glassbox.v1 import monitoring_pb2_grpc

from glassbox.core.errors import FailedPrecondition, InvalidArgument, NotFound
from glassbox.methods.registry import method_class, method_names
from glassbox.models.datasets import LabelledImages
from glassbox.models.repository import ModelState, ModelVersion
from glassbox.monitoring.changes import compare_versions, plan_changes
from glassbox.monitoring.config import DEFAULT_IMAGES, DEFAULT_TOP_K_PERCENT
from glassbox.monitoring.record import ExplanationRecord
from glassbox.monitoring.validate import explanation_monitoring
from glassbox.robustness.history import HistoryStore
from glassbox.robustness.monitoring_config import MonitoringConfig
from glassbox.server.context import ServerContext
from glassbox.serving import Priority
from glassbox.wire.monitoring import changes_message, record_message

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_IMAGES = 1024
DEFAULT_TOP = 6
MAX_TOP = 32


class MonitoringServicer(monitoring_pb2_grpc.MonitoringServiceServicer):
    def __init__(self, context: ServerContext, history: HistoryStore[ExplanationRecord]) -> None:
        self._ctx = context
        self._history = history

    async def GetExplanationHistory(
        self, request: pb.GetExplanationHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetExplanationHistoryResponse:
        if not request.model:
            raise InvalidArgument("model is required", field="model")
        self._ctx.repository.versions(request.model)
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument(
                f"must be in 0..{MAX_PAGE_SIZE}, got {request.page_size}", field="page_size"
            )
        size = request.page_size or DEFAULT_PAGE_SIZE

        def page() -> pb.GetExplanationHistoryResponse:
            try:
                records, token = self._history.page(request.model, request.version, size, request.page_token)
            except ValueError as exc:
                raise InvalidArgument(str(exc), field="page_token") from exc
            return pb.GetExplanationHistoryResponse(
                records=[record_message(r) for r in records], next_page_token=token
            )

        return await self._ctx.blocking(page)  # the history may live in Redis

    async def GetExplanationChanges(
        self, request: pb.GetExplanationChangesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetExplanationChangesResponse:
        after, before = self._versions(request)
        if request.method not in method_names():
            raise InvalidArgument(
                f"unknown method {request.method!r}; methods: {method_names()}", field="method"
            )
        for entry in (after, before):
            assert entry.model is not None
            reason = method_class(request.method).unsupported_reason(entry.model)
            if reason is not None:
                raise FailedPrecondition(f"version {entry.version!r}: {reason}", field="method")
        if not 0 <= request.images <= MAX_IMAGES:
            raise InvalidArgument(f"must be in 0..{MAX_IMAGES}, got {request.images}", field="images")
        if not 0 <= request.top <= MAX_TOP:
            raise InvalidArgument(f"must be in 0..{MAX_TOP}, got {request.top}", field="top")
        if not 0 <= request.top_k_percent <= 100:
            raise InvalidArgument(f"must be in (0, 100], got {request.top_k_percent}", field="top_k_percent")
        reference_set, images = self._reference(request, after)
        labelled = await self._ctx.blocking(self._images, after, reference_set, images)
        after_model, before_model = after.model, before.model
        assert after_model is not None and before_model is not None
        top_k = request.top_k_percent or DEFAULT_TOP_K_PERCENT
        report = await self._ctx.compute(
            lambda token: compare_versions(
                after_model,
                before_model,
                request.method,
                labelled,
                token,
                self._ctx.settings,
                reference_set=reference_set,
                top=request.top or DEFAULT_TOP,
                top_k_percent=top_k,
            ),
            model=after_model,
            estimate=plan_changes(
                after_model, before_model, request.method, len(labelled), self._ctx.settings
            ),
            context=context,
            label="monitor/changes",
            priority=Priority.BACKGROUND,
        )
        return changes_message(report)

    def _versions(self, request: pb.GetExplanationChangesRequest) -> tuple[ModelVersion, ModelVersion]:
        if not request.model:
            raise InvalidArgument("model is required", field="model")
        repository = self._ctx.repository
        after = repository.entry(request.model, request.version)
        ready = [v for v in repository.versions(request.model) if v.state is ModelState.READY]
        if after.state is not ModelState.READY:
            raise FailedPrecondition(
                f"version {after.version!r} is not ready: {after.error}", field="version"
            )
        if request.baseline_version:
            if request.baseline_version not in [v.version for v in repository.versions(request.model)]:
                raise NotFound(
                    f"model {request.model!r} has no version {request.baseline_version!r}",
                    field="baseline_version",
                )
            before = repository.entry(request.model, request.baseline_version)
            if before.state is not ModelState.READY:
                raise FailedPrecondition(
                    f"version {before.version!r} is not ready: {before.error}", field="baseline_version"
                )
        else:
            earlier = ready[: [v.version for v in ready].index(after.version)]
            if not earlier:
                raise FailedPrecondition(
                    f"version {after.version!r} has no earlier ready version; name baseline_version",
                    field="baseline_version",
                )
            before = earlier[-1]
        return after, before

    @staticmethod
    def _reference(request: pb.GetExplanationChangesRequest, after: ModelVersion) -> tuple[str, int]:
        explanations = explanation_monitoring(after)
        images = request.images or (explanations.images if explanations else DEFAULT_IMAGES)
        if request.reference_set:
            return request.reference_set, images
        if after.config is not None and "monitoring" in after.config.extra:
            return MonitoringConfig.parse(dict(after.config.extra["monitoring"])).reference_set, images
        raise InvalidArgument(
            f"version {after.version!r} has no [monitoring] reference set; name a set of the model",
            field="reference_set",
        )

    def _images(self, after: ModelVersion, reference_set: str, images: int) -> LabelledImages:
        try:
            full = self._ctx.repository.dataset(
                after.name,
                reference_set,
                after.version,
                max_pixels=self._ctx.settings.limits.max_image_pixels,
            )
        except NotFound as exc:
            raise NotFound(str(exc), field="reference_set") from exc
        return full.head(images)
