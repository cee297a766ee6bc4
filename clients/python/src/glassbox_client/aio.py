"""The asyncio client: the same calls as GlassboxClient (jobs, inspection, robustness and evaluation
included), awaitable, on a grpc.aio channel.

async with AsyncGlassboxClient("127.0.0.1:50051") as glassbox:
    predictions = await glassbox.predict(["circle.png", "square.png"], model="shapes")
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc as attribution_grpc
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as model_pb
from glassbox_client._generated.glassbox.v1 import model_service_pb2_grpc as model_grpc
from glassbox_client._generated.glassbox.v1 import server_service_pb2 as server_pb
from glassbox_client._generated.glassbox.v1 import server_service_pb2_grpc as server_grpc
from glassbox_client.aio_jobs import AsyncJobs
from glassbox_client.aio_services import AsyncEvaluation, AsyncInspection, AsyncMonitoring, AsyncRobustness
from glassbox_client.connection import ConnectionOptions, RetryPolicy, open_aio_channel
from glassbox_client.errors import UnavailableError, error_from_rpc
from glassbox_client.images import ImageInput
from glassbox_client.requests import Target, attribute_request, output_options, predict_request
from glassbox_client.server_info import ServerInfo
from glassbox_client.types import (
    Attribution,
    AttributionResult,
    ModelInfo,
    ModelSummary,
    Prediction,
    predictions_from_proto,
)

R = TypeVar("R")


class AsyncGlassboxClient:
    """A connection to one Glassbox server for asyncio code; arguments as for GlassboxClient.

    Create it inside a running event loop (grpc.aio channels belong to the loop they start on).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        tls: bool | None = None,
        ca_cert: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        server_name: str | None = None,
        token: str | None = None,
        token_file: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.options = ConnectionOptions.create(
            address,
            tls=tls,
            ca_cert=ca_cert,
            client_cert=client_cert,
            client_key=client_key,
            server_name=server_name,
            token=token,
            token_file=token_file,
            timeout=timeout,
            retry=retry,
        )
        self._channel = open_aio_channel(self.options)
        self._models = model_grpc.ModelServiceStub(self._channel)
        self._attribution = attribution_grpc.AttributionServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._server = server_grpc.ServerServiceStub(self._channel)
        self.jobs = AsyncJobs(self._channel, self.options.metadata, self.options.timeout)
        self.inspection = AsyncInspection(
            self._channel, self.options.metadata, self.options.timeout, self.jobs
        )
        self.evaluation = AsyncEvaluation(self.jobs)
        self.robustness = AsyncRobustness(
            self.jobs, self._channel, self.options.metadata, self.options.timeout
        )
        self.monitoring = AsyncMonitoring(self._channel, self.options.metadata, self.options.timeout)

    async def __aenter__(self) -> AsyncGlassboxClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(
        self,
        name: str,
        rpc: Callable[..., Awaitable[Any]],
        request: Any,
        timeout: float | None,
        parse: Callable[[Any], R],
    ) -> R:
        try:
            response = await rpc(
                request, timeout=timeout or self.options.timeout, metadata=self.options.metadata()
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, name) from None
        return parse(response)

    async def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """As GlassboxClient.health."""
        request = health_pb2.HealthCheckRequest(service=service)
        response = await self._call("Health.Check", self._health.Check, request, timeout, lambda r: r)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    async def wait_until_ready(self, timeout: float = 30.0, service: str = "") -> None:
        """As GlassboxClient.wait_until_ready."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                if await self.health(service, timeout=max(remaining, 0.01)) == "SERVING":
                    return
            except UnavailableError:
                pass
            if remaining <= 0:
                raise UnavailableError(
                    grpc.StatusCode.UNAVAILABLE, f"{self.options.address} not serving after {timeout} s"
                )
            await asyncio.sleep(min(0.2, max(remaining, 0)))

    async def server_info(self, *, timeout: float | None = None) -> ServerInfo:
        """As GlassboxClient.server_info."""
        request = server_pb.GetServerInfoRequest()
        return await self._call(
            "GetServerInfo", self._server.GetServerInfo, request, timeout, ServerInfo.from_proto
        )

    async def models(self, *, timeout: float | None = None) -> list[ModelSummary]:
        """As GlassboxClient.models."""
        return await self._call(
            "ListModels",
            self._models.ListModels,
            model_pb.ListModelsRequest(),
            timeout,
            lambda r: [ModelSummary.from_proto(m) for m in r.models],
        )

    async def model(self, name: str, version: str = "", *, timeout: float | None = None) -> ModelInfo:
        """As GlassboxClient.model."""
        request = model_pb.GetModelRequest(model=name, version=version)
        return await self._call(
            "GetModel", self._models.GetModel, request, timeout, lambda r: ModelInfo.from_proto(r.model)
        )

    async def predict(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        model: str,
        version: str = "",
        top_k: int = 5,
        priority: str = "interactive",
        timeout: float | None = None,
    ) -> list[Prediction]:
        """As GlassboxClient.predict."""
        request = predict_request(images, model, version, top_k, priority)
        return await self._call("Predict", self._models.Predict, request, timeout, predictions_from_proto)

    async def attribute(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        model: str,
        method: str,
        version: str = "",
        targets: Target | Iterable[Target] | None = None,
        top_k: int | None = None,
        image_targets: Sequence[Target | Iterable[Target]] | None = None,
        outputs: Iterable[str] = ("map", "overlay"),
        aggregation: str | None = None,
        colormap: str | None = None,
        overlay_alpha: float | None = None,
        clip_percentile: float | None = None,
        original_size: bool = False,
        picture_aggregation: str | None = None,
        colour_bar: bool = False,
        priority: str = "interactive",
        timeout: float | None = None,
        **params: Any,
    ) -> AttributionResult:
        """As GlassboxClient.attribute."""
        output = output_options(
            outputs,
            aggregation=aggregation,
            colormap=colormap,
            overlay_alpha=overlay_alpha,
            clip_percentile=clip_percentile,
            original_size=original_size,
            picture_aggregation=picture_aggregation,
            colour_bar=colour_bar,
        )
        request = attribute_request(
            images,
            model=model,
            method=method,
            version=version,
            targets=targets,
            top_k=top_k,
            image_targets=image_targets,
            output=output,
            params=params,
            priority=priority,
        )
        return await self._call(
            "Attribute", self._attribution.Attribute, request, timeout, AttributionResult.from_proto
        )

    async def explain(
        self,
        image: ImageInput,
        *,
        model: str,
        method: str = "grad_cam",
        target: Target | None = None,
        outputs: Iterable[str] = ("map", "heatmap", "overlay"),
        timeout: float | None = None,
        **options: Any,
    ) -> Attribution:
        """As GlassboxClient.explain."""
        result = await self.attribute(
            image, model=model, method=method, targets=target, outputs=outputs, timeout=timeout, **options
        )
        return result.images[0].attributions[0]
