"""AttributeRequest ↔ the core's canonical `AttributionRequest` and `AttributionOutcome`.

Method parameters are translated by `wire.method_params.dataclass_from_message`.
"""

from __future__ import annotations

from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import model_service_pb2

from glassbox.core.errors import InvalidArgument
from glassbox.methods.registry import method_class, method_names
from glassbox.methods.service import AttributionOutcome, AttributionRequest, OutputOptions, TargetAttribution
from glassbox.methods.targets import TargetSpec
from glassbox.wire.method_params import dataclass_from_message
from glassbox.wire.tensors import array_to_proto

_SEGMENTATIONS = {"slic": pb.SEGMENTATION_SLIC, "grid": pb.SEGMENTATION_GRID}


def attribution_request(request: pb.AttributeRequest) -> AttributionRequest:
    """The canonical core request of an AttributeRequest (images excluded)."""
    method = request.WhichOneof("method")
    if method is None:
        raise InvalidArgument(f"set one method; this server has {method_names()}", field="method")
    if method not in method_names():
        raise InvalidArgument(f"method {method!r} is not available on this server", field="method")
    params = dataclass_from_message(getattr(request, method), method_class(method).Params, field=method)
    return AttributionRequest(
        model=request.model,
        version=request.version,
        method=method,
        params=params,
        targets=dataclass_from_message(request.targets, TargetSpec, field="targets"),
        image_targets=tuple(
            dataclass_from_message(spec, TargetSpec, field=f"image_targets[{i}]")
            for i, spec in enumerate(request.image_targets)
        ),
        output=dataclass_from_message(request.output, OutputOptions, field="output"),
    )


def attribution_response(outcome: AttributionOutcome) -> pb.AttributeResponse:
    """The wire response of an outcome."""
    return pb.AttributeResponse(
        model=outcome.model,
        version=outcome.version,
        method=outcome.method,
        images=[
            pb.ImageAttributions(
                attributions=[_attribution(result) for result in image.attributions],
                original_height=image.original_size[0],
                original_width=image.original_size[1],
            )
            for image in outcome.images
        ],
        stats=pb.AttributionStats(
            forward_passes=outcome.forward_passes,
            backward_passes=outcome.backward_passes,
            compute_seconds=outcome.compute_seconds,
        ),
        relu_rule=None
        if outcome.relu_rule_activations is None
        else pb.ReluRuleCoverage(
            modified=[site.name for site in outcome.relu_rule_activations if site.guided],
            unmodified=[site.describe() for site in outcome.relu_rule_activations if not site.guided],
        ),
    )


def _attribution(result: TargetAttribution) -> pb.Attribution:
    message = pb.Attribution(heatmap_png=result.heatmap_png, overlay_png=result.overlay_png)
    if result.target is not None:
        t = result.target
        message.target.CopyFrom(
            model_service_pb2.ClassScore(
                index=t.index, label=t.label, probability=t.probability, logit=t.logit
            )
        )
    for name in ("map", "layer_map", "segments", "segment_weights"):
        array = getattr(result, name)
        if array is not None:
            getattr(message, name).CopyFrom(array_to_proto(array))
    if result.convergence_delta is not None:
        message.convergence_delta = result.convergence_delta
    if result.segmentation is not None:
        message.segmentation = _SEGMENTATIONS[result.segmentation]
    return message
