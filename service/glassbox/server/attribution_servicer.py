"""AttributionService: Attribute — translation only; the work is in glassbox.methods.service.

The request is translated on the event loop; the images are decoded and validated, the call planned
(its estimate, and a refusal of a response over the message limit) and its cache key hashed on the
blocking-I/O pool; the computation runs through the compute scheduler (attribution_cache).
"""

from __future__ import annotations

import grpc
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc

from glassbox.backends.base import Model
from glassbox.core.images import ImageSource
from glassbox.methods.registry import method_names
from glassbox.methods.service import (
    AttributionImage,
    AttributionRequest,
    load_attribution_images,
    plan_attribution,
)
from glassbox.server.attribution_cache import attribution_key, cached_attribute
from glassbox.server.context import ServerContext
from glassbox.server.priority import request_priority
from glassbox.serving import Estimate
from glassbox.wire.attribution import attribution_request
from glassbox.wire.tensors import image_sources


class AttributionServicer(attribution_service_pb2_grpc.AttributionServiceServicer):
    def __init__(self, context: ServerContext) -> None:
        self._ctx = context
        method_names()  # import every method module now, not during the first call (and its deadline)

    async def Attribute(
        self, request: pb.AttributeRequest, context: grpc.aio.ServicerContext
    ) -> pb.AttributeResponse:
        core_request = attribution_request(request)
        priority = request_priority(request.priority)
        model = self._ctx.repository.get(request.model, request.version)
        sources = image_sources(list(request.images))
        async with self._ctx.holding_images(sources):
            images, estimate, key = await self._ctx.blocking(self._prepare, sources, core_request, model)
            return await cached_attribute(
                self._ctx,
                model,
                core_request,
                images,
                key=key,
                estimate=estimate,
                context=context,
                priority=priority,
                bypass=request.bypass_cache,
            )

    def _prepare(
        self, sources: list[ImageSource], core_request: AttributionRequest, model: Model
    ) -> tuple[list[AttributionImage], Estimate, str]:
        """On the pool: the decoded images, the call's estimate, its cache key."""
        settings = self._ctx.settings
        output = core_request.output
        images = load_attribution_images(
            sources,
            model.config.input,
            max_pixels=settings.limits.max_image_pixels,
            max_images=settings.limits.max_batch_images,
            keep_originals=output.original_size and output.overlay_png,
        )
        estimate = plan_attribution(model, core_request, images, settings)
        return images, estimate, attribution_key(self._ctx, model, core_request, images)
