"""The `shape_bias` job kind (`KINDS`, registered by the composition root through `wire.kinds`):
shape_bias.proto ↔ core (`validate` checks the spec within `jobs.limits.generative` and
`limits.max_image_pixels` before anything is queued; `run` measures; `result` builds the result
message)."""

from __future__ import annotations

from typing import Any

import torch
from glassbox_client._generated.glassbox.v1 import shape_bias_pb2 as pb

from glassbox.config import Settings
from glassbox.core.call import CallContext
from glassbox.core.errors import InvalidArgument
from glassbox.generative.shape_bias import (
    DEFAULT_STEPS,
    Construction,
    ShapeBias,
    ShapeBiasReport,
    Tally,
    measure,
)
from glassbox.generative.shape_bias_figure import grid_png
from glassbox.generative.style_transfer import StyleSettings
from glassbox.jobs.kinds import JobContext, JobKind
from glassbox.models.repository import ModelRepository
from glassbox.serving.execution import SCHEDULED
from glassbox.wire import generative as convert
from glassbox.wire.fields import optional, set_fields
from glassbox.wire.image_sets import spec_images
from glassbox.wire.jobs import proto_kind

KIND = "shape_bias"
CONSTRUCTIONS = {
    pb.CUE_CONFLICT_CONSTRUCTION_IMAGE: Construction.IMAGE,
    pb.CUE_CONFLICT_CONSTRUCTION_OBJECT: Construction.OBJECT,
}
CONSTRUCTION_PROTOS = {construction: number for number, construction in CONSTRUCTIONS.items()}


def validate_shape_bias(spec: pb.ShapeBiasSpec, repository: ModelRepository, settings: Settings) -> ShapeBias:
    model = convert.model(spec, repository)
    limits = settings.jobs.limits.generative
    style = StyleSettings(
        model=model,
        limits=limits,
        content_layer=spec.content_layer,
        style_layers=tuple(spec.style_layers),
        style_layer_weights=tuple(spec.style_layer_weights),
        steps=optional(spec, "steps", DEFAULT_STEPS),
        **set_fields(spec, "content_weight", "style_weight", "learning_rate"),
    )
    data = spec_images(spec, repository, settings)
    if spec.construction == pb.CUE_CONFLICT_CONSTRUCTION_UNSPECIFIED:
        construction = Construction.OBJECT if data.masks is not None else Construction.IMAGE
    elif spec.construction in CONSTRUCTIONS:
        construction = CONSTRUCTIONS[spec.construction]
    else:
        raise InvalidArgument(f"unknown construction {spec.construction}", field="construction")
    if spec.classes:
        classes = tuple(convert.class_ref(ref, model, f"classes[{i}]") for i, ref in enumerate(spec.classes))
    else:
        labels = data.require_labels("images")
        classes = tuple(int(index) for index in labels.unique().tolist())
    return ShapeBias(
        style=style,
        data=data,
        set_name=spec.images.named or "inline",
        classes=classes,
        construction=construction,
        limits=limits,
        **set_fields(spec, "images_per_pair", "examples"),
    )


def run_shape_bias(job: ShapeBias, ctx: JobContext) -> ShapeBiasReport:
    call = CallContext(job.style.model, ctx.token, ctx.settings.attribution, compute=SCHEDULED)
    return measure(job, call, generator=ctx.generator(torch.device("cpu")), reporter=ctx)


def decisions(tally: Tally) -> pb.CueDecisions:
    return pb.CueDecisions(
        images=tally.images,
        shape=tally.shape,
        texture=tally.texture,
        other=tally.other,
        shape_bias=tally.shape_bias,
    )


def result(job: ShapeBias, report: ShapeBiasReport) -> pb.ShapeBiasResult:
    """The report as a result message, with the grid picture and the example images."""
    labels, names = job.style.model.labels, job.data.names
    examples = set(report.example_indices(job.examples))
    images = []
    for i, image in enumerate(report.images):
        message = pb.CueConflictImage(
            shape_class=image.shape_class,
            texture_class=image.texture_class,
            content_image=names[image.content_index],
            style_image=names[image.style_index],
            predicted_class=image.predicted,
            predicted_label=labels[image.predicted],
            shape_probability=image.shape_probability,
            texture_probability=image.texture_probability,
        )
        if i in examples:
            message.image.CopyFrom(convert.generated_image(report.pictures[i]))
        images.append(message)
    overall = report.overall
    model = job.style.model
    return pb.ShapeBiasResult(
        shape_bias=overall.shape_bias,
        decisions=decisions(overall),
        pairs=[
            pb.ShapeBiasPair(
                shape_class=pair.shape_class,
                shape_label=labels[pair.shape_class],
                texture_class=pair.texture_class,
                texture_label=labels[pair.texture_class],
                decisions=decisions(pair.tally),
            )
            for pair in report.pairs
        ],
        images=images,
        construction=CONSTRUCTION_PROTOS[report.construction],
        content_accuracy=report.content_accuracy,
        style_accuracy=report.style_accuracy,
        grid_png=grid_png(
            report,
            job.classes,
            labels,
            torch.stack([job.data.images[_original(report, index)] for index in job.classes]),
            f"{model.name} v{model.version} on {report.set_name}",
        ),
        images_set=report.set_name,
        wall_seconds=report.wall_seconds,
    )


def _original(report: ShapeBiasReport, index: int) -> int:
    """An image of class `index` for the grid's diagonal: the first one used as content."""
    return next(image.content_index for image in report.images if image.shape_class == index)


KINDS: tuple[JobKind[Any, Any], ...] = (
    proto_kind(KIND, pb.ShapeBiasSpec, validate_shape_bias, run_shape_bias, result),
)
