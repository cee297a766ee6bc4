"""The synchronous client.

    from glassbox_client import GlassboxClient
    with GlassboxClient("127.0.0.1:50051") as glassbox:
        glassbox.explain("docs/images/star.png", model="shapes").overlay.save("overlay.png")

Every call has a deadline (`timeout`, seconds: the client's default or the call's own), retries
UNAVAILABLE with backoff inside that deadline, and raises a `glassbox_client.errors.GlassboxError`
subclass carrying the gRPC code and the server's message.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc as attribution_grpc
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as model_pb
from glassbox_client._generated.glassbox.v1 import model_service_pb2_grpc as model_grpc
from glassbox_client._generated.glassbox.v1 import server_service_pb2 as server_pb
from glassbox_client._generated.glassbox.v1 import server_service_pb2_grpc as server_grpc
from glassbox_client.connection import ConnectionOptions, RetryPolicy, open_channel
from glassbox_client.errors import UnavailableError, error_from_rpc
from glassbox_client.evaluation import Evaluation
from glassbox_client.images import ImageInput
from glassbox_client.inspection import Inspection
from glassbox_client.jobs import Jobs
from glassbox_client.monitoring import Monitoring
from glassbox_client.requests import Target, attribute_request, output_options, predict_request
from glassbox_client.robustness import Robustness
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


class GlassboxClient:
    """A connection to one Glassbox server (a channel, reused by every call; thread-safe).

    Args:
        address: host:port; default GLASSBOX_ADDRESS or 127.0.0.1:50051.
        tls: use TLS (implied by ca_cert or client_cert); the system roots verify the server unless
            ca_cert is given.
        ca_cert, client_cert, client_key: PEM files: the CA that signed the server's certificate, and
            this client's certificate and key for mutual TLS.
        server_name: the name to verify in the server's certificate when it differs from the address.
        token, token_file: bearer token (default GLASSBOX_TOKEN or the file in GLASSBOX_TOKEN_FILE).
        timeout: default deadline of every call, seconds.
        retry: backoff for UNAVAILABLE; `NO_RETRIES` turns retries off.
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
        self._channel = open_channel(self.options)
        self._models = model_grpc.ModelServiceStub(self._channel)
        self._attribution = attribution_grpc.AttributionServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._server = server_grpc.ServerServiceStub(self._channel)
        self.jobs = Jobs(self._channel, self.options.metadata, self.options.timeout)
        self.inspection = Inspection(self._channel, self.options.metadata, self.options.timeout, self.jobs)
        self.evaluation = Evaluation(self.jobs)
        self.robustness = Robustness(self.jobs, self._channel, self.options.metadata, self.options.timeout)
        self.monitoring = Monitoring(self._channel, self.options.metadata, self.options.timeout)

    def __enter__(self) -> GlassboxClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(
        self,
        name: str,
        rpc: Callable[..., Any],
        request: Any,
        timeout: float | None,
        parse: Callable[[Any], R],
    ) -> R:
        try:
            response = rpc(request, timeout=timeout or self.options.timeout, metadata=self.options.metadata())
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, name) from None
        return parse(response)

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """Health of the server (""), a gRPC service, or a model ("model/<name>"): "SERVING",
        "NOT_SERVING" or "SERVICE_UNKNOWN"."""
        request = health_pb2.HealthCheckRequest(service=service)
        response = self._call("Health.Check", self._health.Check, request, timeout, lambda r: r)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def wait_until_ready(self, timeout: float = 30.0, service: str = "") -> None:
        """Block until health reports SERVING; UnavailableError when it does not within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                if self.health(service, timeout=max(remaining, 0.01)) == "SERVING":
                    return
            except UnavailableError:
                pass
            if remaining <= 0:
                raise UnavailableError(
                    grpc.StatusCode.UNAVAILABLE, f"{self.options.address} not serving after {timeout} s"
                )
            time.sleep(min(0.2, max(remaining, 0)))

    def server_info(self, *, timeout: float | None = None) -> ServerInfo:
        """The server's version, limits and caps in force, engines, methods, job kinds, error reasons,
        and who it takes the caller to be (GetServerInfo)."""
        request = server_pb.GetServerInfoRequest()
        return self._call(
            "GetServerInfo", self._server.GetServerInfo, request, timeout, ServerInfo.from_proto
        )

    def models(self, *, timeout: float | None = None) -> list[ModelSummary]:
        """Every model in the repository with the state of each version."""
        return self._call(
            "ListModels",
            self._models.ListModels,
            model_pb.ListModelsRequest(),
            timeout,
            lambda r: [ModelSummary.from_proto(m) for m in r.models],
        )

    def model(self, name: str, version: str = "", *, timeout: float | None = None) -> ModelInfo:
        """Full description of a model version (default: the newest ready one)."""
        request = model_pb.GetModelRequest(model=name, version=version)
        return self._call(
            "GetModel", self._models.GetModel, request, timeout, lambda r: ModelInfo.from_proto(r.model)
        )

    def predict(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        model: str,
        version: str = "",
        top_k: int = 5,
        priority: str = "interactive",
        timeout: float | None = None,
    ) -> list[Prediction]:
        """Top-k classes of each image (one image, or a list: one Prediction each, in order)."""
        request = predict_request(images, model, version, top_k, priority)
        return self._call("Predict", self._models.Predict, request, timeout, predictions_from_proto)

    def attribute(
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
        """Attribution maps of every (image, target) pair by one method.

        `method` is a name from `model(...).supported_methods` ("grad_cam", "integrated_gradients",
        ...); `**params` are its parameters (`steps=32`, `layer="features.3"`). Targets are class
        indices or labels shared by all images, `top_k` (default: the top class), or
        `image_targets` (one entry per image). `outputs` chooses among "map", "heatmap", "overlay";
        `picture_aggregation` ("abs_max", "sum", ...) says how the pictures reduce the channels
        (default: |max| for the pixel-gradient methods) and `colour_bar=True` adds the scale and
        the method's name below each picture.
        `priority="background"` lets the server serve interactive calls first (a batch of explanations
        that nobody waits for).
        """
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
        return self._call(
            "Attribute", self._attribution.Attribute, request, timeout, AttributionResult.from_proto
        )

    def explain(
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
        """One image, one target (default: the predicted class): its map, heatmap and overlay."""
        result = self.attribute(
            image, model=model, method=method, targets=target, outputs=outputs, timeout=timeout, **options
        )
        return result.images[0].attributions[0]
