"""Attribution results through the result cache: the key, the cached value, the response flag.

The value is the serialized AttributeResponse of the computation, so a hit costs a lookup and a
parse, with no rendering or tensor conversion. The key (cache.keys.result_key) covers the resolved
model (name, version, weights digest), the method and its canonical parameters, the targets, every
image as prepared for the model (pixels, original size, crop box, and the original pixels when an
overlay at the original size needs them) and the output options.
"""

from __future__ import annotations

from dataclasses import replace

import grpc
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb

from glassbox.backends.base import Model
from glassbox.cache.service import Source
from glassbox.methods.registry import method_class
from glassbox.methods.service import AttributionImage, AttributionRequest, attribute
from glassbox.methods.targets import TOP_1, TargetSpec
from glassbox.server.context import ServerContext
from glassbox.serving import Estimate, Priority
from glassbox.wire.attribution import attribution_response

PARSE_INLINE_BYTES = 1 << 20
"""A cached response up to this size is parsed on the event loop; a larger one on the pool."""


def attribution_key(
    ctx: ServerContext, model: Model, request: AttributionRequest, images: list[AttributionImage]
) -> str:
    """The result-cache key of a request ("" with the cache off). Hashes every image: run it on the pool."""
    return ctx.cache.key(
        "attribution",
        model=model,
        method=request.method,
        parameters=request.params,
        targets=_canonical_targets(request),
        pixels=images,
        options=replace(request.output, map=request.output.wants_map),
    )


async def cached_attribute(
    ctx: ServerContext,
    model: Model,
    request: AttributionRequest,
    images: list[AttributionImage],
    *,
    key: str,
    estimate: Estimate,
    context: grpc.aio.ServicerContext,
    priority: Priority,
    bypass: bool,
) -> pb.AttributeResponse:
    """The response of `attribute(...)`, from the cache when an identical request was answered before.

    Only the computation goes through the compute scheduler; the lookup, the store and the (de)serialising
    run on the blocking-I/O pool. Identical concurrent requests compute once (single-flight)."""
    computed: list[pb.AttributeResponse] = []

    async def compute() -> bytes:
        outcome = await ctx.compute(
            lambda token: attribute(model, request, images, token, ctx.settings),
            model=model,
            estimate=estimate,
            context=context,
            priority=priority,
            label=f"Attribute/{request.method}",
        )
        ctx.metrics.count_passes(
            outcome.method, forward=outcome.forward_passes, backward=outcome.backward_passes
        )
        response = await ctx.blocking(attribution_response, outcome)
        computed.append(response)
        return await ctx.blocking(response.SerializeToString)

    result = await ctx.cache.get_or_compute_async(
        key, compute, model=model.name, method=request.method, bypass=bypass, executor=ctx.pool
    )
    if result.source is Source.COMPUTED and computed:
        return computed[0]  # this call's own computation: no need to parse what it just serialised
    if len(result.value) > PARSE_INLINE_BYTES:
        response = await ctx.blocking(pb.AttributeResponse.FromString, result.value)
    else:
        response = pb.AttributeResponse.FromString(result.value)
    if result.from_cache:
        response.stats.Clear()
        response.from_cache = True
    return response


def _canonical_targets(request: AttributionRequest) -> tuple[TargetSpec, tuple[TargetSpec, ...]]:
    """Unset targets mean top-1 for a class-explaining method; only valid requests are merged this way,
    so a request that would be refused never shares a key with one that was answered."""
    if (
        method_class(request.method).explains_classes
        and not request.image_targets
        and request.targets.is_empty
    ):
        return TOP_1, ()
    return request.targets, request.image_targets
