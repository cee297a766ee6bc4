"""InspectionService: GetFilters, GetActivations, Embed — translation only; the work is in
glassbox.inspection. Images are decoded and responses rendered (PNG grids, tensors) on the blocking-I/O
pool; everything that touches the model runs through the compute scheduler."""

from __future__ import annotations

import grpc
import torch
from glassbox_client._generated.glassbox.v1 import inspection_pb2 as pb
from glassbox_client._generated.glassbox.v1 import inspection_pb2_grpc

from glassbox.backends.torch_backend import TorchModel
from glassbox.common import pictures
from glassbox.core.errors import InvalidArgument
from glassbox.core.images import load_image
from glassbox.inspection.activations import (
    check_embedding_size,
    embed,
    embedding_layer,
    ranked_activations,
)
from glassbox.inspection.filters import filters
from glassbox.inspection.layers import inspectable
from glassbox.render import png
from glassbox.server.context import ServerContext
from glassbox.serving import Estimate
from glassbox.wire import inspection as convert
from glassbox.wire.generative import tensor
from glassbox.wire.tensors import image_source, image_sources


class InspectionServicer(inspection_pb2_grpc.InspectionServiceServicer):
    def __init__(self, context: ServerContext) -> None:
        self._ctx = context

    def _model(self, name: str, version: str) -> TorchModel:
        return inspectable(self._ctx.repository.get(name, version, field="model"))

    async def GetFilters(
        self, request: pb.GetFiltersRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetFiltersResponse:
        model = self._model(request.model, request.version)
        view = convert.filter_view(request.view)
        drawn = await self._ctx.compute(
            lambda _token: filters(model, request.layer, view),
            model=model,
            estimate=Estimate(),
            context=context,
            label="GetFilters",
        )

        def response() -> pb.GetFiltersResponse:
            return pb.GetFiltersResponse(
                model=model.name,
                version=model.version,
                layer=drawn.layer,
                view=convert.FILTER_VIEW_ENUMS[drawn.view],
                weights=tensor(drawn.weights),
                grid_png=png(drawn.grid),
                grid_rows=drawn.rows,
                grid_columns=drawn.columns,
                tile_size=drawn.tile_size,
            )

        return await self._ctx.blocking(response)

    async def GetActivations(
        self, request: pb.GetActivationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetActivationsResponse:
        model = self._model(request.model, request.version)
        if not request.HasField("image"):
            raise InvalidArgument("an image is required", field="image")
        limit = self._ctx.settings.limits.max_image_pixels
        source = image_source(request.image, field="image")
        async with self._ctx.holding_images([source]):
            pixels = await self._ctx.blocking(
                lambda: load_image(source, model.config.input, max_pixels=limit, field="image").pixels
            )
            ranked = await self._ctx.compute(
                lambda _token: ranked_activations(model, request.layer, pixels, request.top_k),
                model=model,
                estimate=Estimate(forward_rows=1),
                context=context,
                label="GetActivations",
            )

        def response() -> pb.GetActivationsResponse:
            picture, rows, columns = pictures.activation_grid(ranked.maps)
            return pb.GetActivationsResponse(
                model=model.name,
                version=model.version,
                layer=request.layer,
                channels=[
                    pb.ChannelActivation(channel=int(c), mean=float(mean), max=float(peak))
                    for c, mean, peak in zip(ranked.channels, ranked.means, ranked.maxima, strict=True)
                ],
                activations=tensor(ranked.maps),
                grid_png=png(picture),
                grid_rows=rows,
                grid_columns=columns,
                layer_channels=ranked.layer_channels,
            )

        return await self._ctx.blocking(response)

    async def Embed(self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext) -> pb.EmbedResponse:
        model = self._model(request.model, request.version)
        layer = embedding_layer(model, request.layer)
        pooling = convert.pooling(request.pooling)
        sources = image_sources(list(request.images))
        async with self._ctx.holding_images(sources):
            images = await self._ctx.load_images(sources, model)
            check_embedding_size(model, layer, pooling, len(images))
            embedded = await self._ctx.compute(
                lambda token: embed(
                    model,
                    layer,
                    torch.stack([image.pixels for image in images]),
                    pooling,
                    after_batch=lambda _done: token.check(),
                ),
                model=model,
                estimate=Estimate(forward_rows=len(images)),
                context=context,
                label="Embed",
            )
        return pb.EmbedResponse(
            model=model.name,
            version=model.version,
            layer=layer,
            pooling=convert.POOLING_ENUMS[pooling],
            embeddings=tensor(embedded.vectors),
        )
