"""`AsyncGlassboxClient.inspection`, `.robustness`, `.evaluation` and `.monitoring`: the calls of
`Inspection`, `Robustness`, `Evaluation` and `Monitoring`, awaitable, built from the same request
builders and returning the same typed results.

    async with AsyncGlassboxClient() as glassbox:
        vectors = (await glassbox.inspection.embed(["circle.png", "square.png"], model="shapes")).vectors
        report = await glassbox.robustness.evaluate("shapes", images="shapes-val", limit=16,
                                                    attacks=["fgsm"], epsilons=[4 / 255])

Cancelling a task that awaits `robustness.evaluate` or `evaluation.evaluate` cancels the job on the
server (as `AsyncJobs.wait`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc

from glassbox_client import evaluation, monitoring, robustness
from glassbox_client._generated.glassbox.v1 import (
    inspection_pb2_grpc,
    monitoring_pb2_grpc,
    robustness_pb2_grpc,
)
from glassbox_client._generated.glassbox.v1 import robustness_pb2 as robustness_pb
from glassbox_client.aio_jobs import AsyncJobs
from glassbox_client.calls import AsyncServiceCalls
from glassbox_client.evaluation import ExplanationReport
from glassbox_client.images import ImageInput
from glassbox_client.inspection import (
    Activations,
    Embeddings,
    Filters,
    activations_request,
    dataset_job,
    embed_request,
    filters_request,
)
from glassbox_client.inspection_results import ActivationAtlas, EmbeddingMap, TopActivating
from glassbox_client.jobs import DEFAULT_WAIT_S
from glassbox_client.robustness_results import RobustnessRecord, RobustnessReport


class AsyncInspection:
    """The InspectionService calls and the inspection jobs over an asyncio client's channel, deadline
    and token."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        metadata: Callable[[], tuple],
        default_timeout: float,
        jobs: AsyncJobs,
    ) -> None:
        self._call = AsyncServiceCalls(
            inspection_pb2_grpc.InspectionServiceStub(channel), metadata, default_timeout
        )
        self._jobs = jobs

    async def filters(
        self,
        *,
        model: str,
        layer: str = "",
        view: str | None = None,
        version: str = "",
        timeout: float | None = None,
    ) -> Filters:
        """As Inspection.filters."""
        request = filters_request(model=model, layer=layer, view=view, version=version)
        return Filters.from_proto(await self._call("GetFilters", request, timeout))

    async def activations(
        self,
        image: ImageInput,
        *,
        model: str,
        layer: str,
        top_k: int = 0,
        version: str = "",
        timeout: float | None = None,
    ) -> Activations:
        """As Inspection.activations."""
        request = activations_request(image, model=model, layer=layer, top_k=top_k, version=version)
        return Activations.from_proto(await self._call("GetActivations", request, timeout))

    async def embed(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        model: str,
        layer: str = "",
        pooling: str | None = None,
        version: str = "",
        timeout: float | None = None,
    ) -> Embeddings:
        """As Inspection.embed."""
        request = embed_request(images, model=model, layer=layer, pooling=pooling, version=version)
        return Embeddings.from_proto(await self._call("Embed", request, timeout))

    async def embedding_map(
        self,
        model: str,
        *,
        images: str | Sequence[ImageInput],
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
        **spec: Any,
    ) -> EmbeddingMap:
        """As Inspection.embedding_map."""
        request = dataset_job("embedding_map", model, images, **spec)
        job = await self._jobs.run_request(request, timeout=timeout, progress=progress)
        return EmbeddingMap.from_proto(job.id, job.embedding_map)

    async def top_activating(
        self,
        model: str,
        *,
        images: str | Sequence[ImageInput],
        layer: str,
        channel: int,
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
        **spec: Any,
    ) -> TopActivating:
        """As Inspection.top_activating."""
        request = dataset_job("top_activating", model, images, layer=layer, channel=channel, **spec)
        job = await self._jobs.run_request(request, timeout=timeout, progress=progress)
        return TopActivating.from_proto(job.id, job.top_activating)

    async def activation_atlas(
        self,
        model: str,
        *,
        images: str | Sequence[ImageInput],
        layer: str,
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
        **spec: Any,
    ) -> ActivationAtlas:
        """As Inspection.activation_atlas."""
        request = dataset_job("activation_atlas", model, images, layer=layer, **spec)
        job = await self._jobs.run_request(request, timeout=timeout, progress=progress)
        return ActivationAtlas.from_proto(job.id, job.activation_atlas)


class AsyncRobustness:
    """Robustness evaluations (jobs) and the RobustnessService history for asyncio code."""

    def __init__(
        self,
        jobs: AsyncJobs,
        channel: grpc.aio.Channel,
        metadata: Callable[[], tuple],
        default_timeout: float,
    ) -> None:
        self._jobs = jobs
        self._call = AsyncServiceCalls(
            robustness_pb2_grpc.RobustnessServiceStub(channel), metadata, default_timeout
        )

    async def evaluate(
        self,
        model: str,
        *,
        images: str | Sequence[ImageInput],
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
        **spec: Any,
    ) -> RobustnessReport:
        """As Robustness.evaluate; cancelling the awaiting task cancels the job."""
        request = robustness.robustness_job(model, images, spec)
        return robustness.report_from_job(
            await self._jobs.run_request(request, timeout=timeout, progress=progress)
        )

    async def history(
        self, model: str, *, version: str = "", limit: int = 0, timeout: float | None = None
    ) -> list[RobustnessRecord]:
        """As Robustness.history."""
        request = robustness_pb.GetRobustnessHistoryRequest(model=model, version=version, limit=limit)
        return robustness.records_from_response(await self._call("GetRobustnessHistory", request, timeout))


class AsyncMonitoring:
    """The MonitoringService (explanation monitoring) for asyncio code."""

    def __init__(
        self, channel: grpc.aio.Channel, metadata: Callable[[], tuple], default_timeout: float
    ) -> None:
        self._call = AsyncServiceCalls(
            monitoring_pb2_grpc.MonitoringServiceStub(channel), metadata, default_timeout
        )

    async def explanation_history(
        self,
        model: str,
        *,
        version: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> monitoring.ExplanationHistoryPage:
        """As Monitoring.explanation_history."""
        request = monitoring.history_request(model, version, page_size, page_token)
        return monitoring.page_from_response(await self._call("GetExplanationHistory", request, timeout))

    async def explanation_changes(
        self, model: str, method: str, *, timeout: float | None = None, **options: Any
    ) -> monitoring.ExplanationChanges:
        """As Monitoring.explanation_changes."""
        request = monitoring.changes_request(model, method, **options)
        return monitoring.changes_from_message(await self._call("GetExplanationChanges", request, timeout))


class AsyncEvaluation:
    """Explanation-evaluation jobs for asyncio code."""

    def __init__(self, jobs: AsyncJobs) -> None:
        self._jobs = jobs

    async def evaluate(
        self,
        model: str,
        methods: Sequence[str | dict[str, Any]],
        *,
        images: str | Sequence[ImageInput],
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
        **spec: Any,
    ) -> ExplanationReport:
        """As Evaluation.evaluate; cancelling the awaiting task cancels the job."""
        request = evaluation.evaluation_job(model, methods, images, spec)
        return evaluation.report_from_job(
            await self._jobs.run_request(request, timeout=timeout, progress=progress)
        )
