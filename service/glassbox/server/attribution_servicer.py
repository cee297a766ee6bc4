"""AttributionService: Attribute — translation only; the work is in glassbox.methods.service."""

from __future__ import annotations

import grpc
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc

from glassbox.core.cancellation import CancellationToken
from glassbox.methods.registry import method_names
from glassbox.methods.service import load_attribution_images
from glassbox.server.attribution_cache import cached_attribute
from glassbox.server.attribution_convert import attribution_request
from glassbox.server.context import ServerContext
from glassbox.wire.tensors import image_sources


class AttributionServicer(attribution_service_pb2_grpc.AttributionServiceServicer):
    def __init__(self, context: ServerContext) -> None:
        self._ctx = context
        method_names()  # import every method module now, not during the first call (and its deadline)

    def Attribute(self, request: pb.AttributeRequest, context: grpc.ServicerContext) -> pb.AttributeResponse:
        settings = self._ctx.settings
        core_request = attribution_request(request)
        model = self._ctx.repository.get(request.model, request.version)
        output = core_request.output
        images = load_attribution_images(
            image_sources(list(request.images)),
            model.config.input,
            max_pixels=settings.limits.max_image_pixels,
            max_images=settings.limits.max_batch_images,
            keep_originals=output.original_size and output.overlay_png,
        )
        token = CancellationToken(context.is_active)
        return cached_attribute(self._ctx, model, core_request, images, token, bypass=request.bypass_cache)
