"""ModelService: ListModels, GetModel, Predict — translation only; the work is in glassbox.models.

ListModels and GetModel read the in-memory repository on the event loop (they never wait for a thread or
the device, so they answer under any load); Predict decodes its images on the blocking-I/O pool and runs
its forward pass through the compute scheduler.
"""

from __future__ import annotations

import grpc
import torch
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import model_service_pb2_grpc

from glassbox.core.errors import InvalidArgument
from glassbox.core.images import ResizePolicy
from glassbox.core.model_config import ExplainMode
from glassbox.models.repository import ModelRepository, ModelState, ModelVersion
from glassbox.server.context import ServerContext
from glassbox.server.priority import request_priority
from glassbox.serving import Estimate
from glassbox.serving.predict import top_k
from glassbox.wire.tensors import image_sources

BACKENDS = {"torch": pb.BACKEND_TORCH, "onnxruntime": pb.BACKEND_ONNXRUNTIME}
EXPLAIN_MODES = {ExplainMode.FAST: pb.EXPLAIN_MODE_FAST, ExplainMode.EXACT: pb.EXPLAIN_MODE_EXACT}
RESIZE = {
    ResizePolicy.DIRECT: pb.RESIZE_POLICY_DIRECT,
    ResizePolicy.RESIZE_CENTER_CROP: pb.RESIZE_POLICY_RESIZE_CENTER_CROP,
}
STATES = {ModelState.READY: pb.MODEL_STATE_READY, ModelState.FAILED: pb.MODEL_STATE_FAILED}


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, context: ServerContext) -> None:
        self._ctx = context

    @property
    def _repository(self) -> ModelRepository:
        return self._ctx.repository

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[
                pb.ModelSummary(
                    name=name,
                    versions=[
                        pb.ModelVersionStatus(version=v.version, state=STATES[v.state], error=v.error)
                        for v in self._repository.versions(name)
                    ],
                )
                for name in self._repository.names()
            ]
        )

    async def GetModel(
        self, request: pb.GetModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetModelResponse:
        name, field = requested_model(request)
        entry = self._repository.entry(name, request.version, field=field)
        return pb.GetModelResponse(
            model=model_info(
                entry, self._ctx.supported_methods(entry), self._repository.dataset_names(entry.name)
            )
        )

    async def Predict(
        self, request: pb.PredictRequest, context: grpc.aio.ServicerContext
    ) -> pb.PredictResponse:
        priority = request_priority(request.priority)
        model = self._repository.get(request.model, request.version)
        sources = image_sources(list(request.images))
        async with self._ctx.holding_images(sources):
            images = await self._ctx.load_images(sources, model)
            scores = await self._ctx.compute(
                lambda _token: top_k(model, torch.stack([image.pixels for image in images]), request.top_k),
                model=model,
                estimate=Estimate(forward_rows=len(images)),
                context=context,
                priority=priority,
                label="Predict",
            )
        return pb.PredictResponse(
            model=model.name,
            version=model.version,
            predictions=[
                pb.Prediction(
                    classes=[
                        pb.ClassScore(index=s.index, label=s.label, probability=s.probability, logit=s.logit)
                        for s in row
                    ]
                )
                for row in scores
            ],
        )


def requested_model(request: pb.GetModelRequest) -> tuple[str, str]:
    """The model a GetModel asks for and the field that named it: `model`, or the deprecated `name`."""
    if request.model and request.name and request.model != request.name:
        raise InvalidArgument(
            f"names model {request.name!r} but model is {request.model!r}; set only model "
            "(name is deprecated)",
            field="name",
        )
    return (request.model, "model") if request.model or not request.name else (request.name, "name")


def model_info(entry: ModelVersion, supported_methods: list[str], datasets: list[str]) -> pb.ModelInfo:
    """Everything GetModel says about one version; a FAILED version says what is known and why."""
    info = pb.ModelInfo(
        name=entry.name,
        version=entry.version,
        state=STATES[entry.state],
        error=entry.error,
        datasets=datasets,
    )
    config = entry.config
    if config is not None:
        info.input_height = config.input.height
        info.input_width = config.input.width
        info.resize_policy = RESIZE[config.input.resize]
        info.crop_fraction = config.input.crop_fraction
        info.normalization.mean.extend(config.mean)
        info.normalization.std.extend(config.std)
        info.labels.extend(config.labels)
        info.description = config.description
        info.default_cam_layer = config.default_cam_layer or ""
        info.explain_mode = EXPLAIN_MODES[config.mode]
    model = entry.model
    if model is not None:
        info.backend = BACKENDS[model.backend_name]
        info.weights_digest = model.weights_digest
        info.forward_engine = model.forward_engine
        info.supported_methods.extend(supported_methods)
        info.layers.extend(
            pb.LayerInfo(
                name=layer.name,
                kind=layer.kind,
                output_shape=layer.output_shape,
                cam_compatible=layer.cam_compatible,
            )
            for layer in model.layers
        )
    return info
