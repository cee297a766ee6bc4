"""The inspection job kinds (embedding_map, top_activating, activation_atlas: `KINDS`, registered by the
composition root through `wire.kinds`). Each is a `validate` (spec → checked core request, before
anything is queued), a `run` (core request + job context → the core's outcome) and a `result` (outcome →
result message). Unset optional fields take the core dataclasses' defaults. Random draws come from a
CPU generator seeded with the job's seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from glassbox_client._generated.glassbox.v1 import inspection_pb2 as pb

from glassbox.backends.torch_backend import TorchModel
from glassbox.common import pictures
from glassbox.config import Settings
from glassbox.core.errors import InvalidArgument
from glassbox.inspection.activations import embedding_layer
from glassbox.inspection.atlas import ActivationAtlas, AtlasOutcome, activation_atlas
from glassbox.inspection.embedding_map import EmbeddingMap, EmbeddingMapOutcome, embedding_map, map_steps
from glassbox.inspection.layers import inspectable
from glassbox.inspection.projection import Projection
from glassbox.inspection.top_activating import TopActivating, TopActivatingOutcome, top_activating, top_steps
from glassbox.jobs.kinds import JobContext, JobKind
from glassbox.models.datasets import LabelledImages
from glassbox.models.repository import ModelRepository
from glassbox.render import png
from glassbox.wire import inspection as convert
from glassbox.wire.fields import ImageSetSpec, enum_value, optional, set_fields
from glassbox.wire.generative import generated_image, tensor
from glassbox.wire.image_sets import spec_images
from glassbox.wire.jobs import proto_kind


def _model_and_images(
    spec: ImageSetSpec, repository: ModelRepository, settings: Settings
) -> tuple[TorchModel, LabelledImages]:
    model = inspectable(repository.get(spec.model, spec.version, field="model"))
    if not spec.HasField("images"):
        raise InvalidArgument("a set of images is required (inline or named)", field="images")
    return model, spec_images(spec, repository, settings)


def _png_or_empty(picture: np.ndarray | None) -> bytes:
    return b"" if picture is None else png(picture)


def validate_embedding_map(
    spec: pb.EmbeddingMapSpec, repository: ModelRepository, settings: Settings
) -> EmbeddingMap:
    model, images = _model_and_images(spec, repository, settings)
    projections = convert.projections(spec.projections) or EmbeddingMap.projections
    return EmbeddingMap(
        model=model,
        images=images,
        layer=embedding_layer(model, spec.layer),
        pooling=convert.pooling(spec.pooling),
        projections=projections,
        **set_fields(spec, "perplexity", "iterations", "thumbnail_size", "canvas_size"),
    )


def run_embedding_map(job: EmbeddingMap, ctx: JobContext) -> EmbeddingMapOutcome:
    total = map_steps(job)
    return embedding_map(job, seed=ctx.seed, report=lambda step, note: ctx.report(step, total, message=note))


def embedding_map_result(job: EmbeddingMap, outcome: EmbeddingMapOutcome) -> pb.EmbeddingMapResult:
    labels = job.images.labels
    return pb.EmbeddingMapResult(
        layer=job.layer,
        embeddings=tensor(outcome.vectors),
        labels=[] if labels is None else labels.tolist(),
        predictions=outcome.predictions.tolist(),
        names=list(job.images.names),
        layouts=[
            pb.EmbeddingLayout(
                projection=convert.PROJECTION_ENUMS[drawn.layout.projection],
                coordinates=tensor(torch.from_numpy(drawn.layout.coordinates)),
                by_label_png=_png_or_empty(drawn.by_label),
                by_prediction_png=png(drawn.by_prediction),
                knn_label_agreement=drawn.knn_label_agreement,
                explained_variance=drawn.layout.explained_variance,
            )
            for drawn in outcome.layouts
        ],
    )


def validate_top_activating(
    spec: pb.TopActivatingSpec, repository: ModelRepository, settings: Settings
) -> TopActivating:
    model, images = _model_and_images(spec, repository, settings)
    if spec.HasField("y") != spec.HasField("x"):
        raise InvalidArgument("set both y and x for a unit, or neither for the whole channel", field="y")
    unit = (spec.y, spec.x) if spec.HasField("y") else None
    if unit is not None and spec.ranking != pb.RANKING_UNSPECIFIED:
        raise InvalidArgument("a unit is ranked by its own activation: leave ranking unset", field="ranking")
    return TopActivating(
        model=model,
        images=images,
        layer=spec.layer,
        channel=spec.channel,
        unit=unit,
        ranking=enum_value(convert.RANKINGS, spec.ranking, "ranking", "Ranking"),
        max_count=settings.jobs.limits.inspection.max_top_examples,
        **set_fields(spec, "count"),
    )


def run_top_activating(job: TopActivating, ctx: JobContext) -> TopActivatingOutcome:
    total = top_steps(job)
    return top_activating(
        job,
        generator=ctx.generator(torch.device("cpu")),
        report=lambda step, note: ctx.report(step, total, message=note),
    )


def top_activating_result(job: TopActivating, outcome: TopActivatingOutcome) -> pb.TopActivatingResult:
    labels = job.images.labels
    examples = []
    for example in outcome.examples:
        box = example.patch
        image = job.images.images[example.index]
        whole = pictures.rgb(image)
        examples.append(
            pb.TopActivatingExample(
                index=example.index,
                name=job.images.names[example.index],
                activation=example.activation,
                y=example.y,
                x=example.x,
                patch=convert.pixel_box(box),
                patch_png=png(whole[box.top : box.top + box.height, box.left : box.left + box.width]),
                patch_gradient=tensor(example.gradient),
                gradient_png=png(pictures.diverging_tiles(example.gradient.sum(0)[None], 1)[0]),
                image_png=png(pictures.outline(whole, box.top, box.left, box.height, box.width)),
                label=-1 if labels is None else int(labels[example.index]),
                prediction=example.prediction,
            )
        )
    field = outcome.field
    size = field.image_size if field.whole_image else (field.height, field.width)
    return pb.TopActivatingResult(
        layer=job.layer,
        channel=job.channel,
        examples=examples,
        activations=tensor(outcome.activations),
        receptive_field_height=size[0],
        receptive_field_width=size[1],
        summary_png=png(outcome.summary),
    )


def validate_activation_atlas(
    spec: pb.ActivationAtlasSpec, repository: ModelRepository, settings: Settings
) -> ActivationAtlas:
    model, images = _model_and_images(spec, repository, settings)
    layout = (
        Projection.TSNE
        if spec.layout == pb.PROJECTION_UNSPECIFIED
        else enum_value(convert.PROJECTIONS, spec.layout, "layout", "Projection")
    )
    return ActivationAtlas(
        model=model,
        images=images,
        layer=spec.layer,
        layout=layout,
        tile_size=optional(spec, "tile_size", model.config.input.height),
        **set_fields(spec, "grid_size", "min_count", "steps", "learning_rate"),
        limits=settings.jobs.limits.generative,
    )


def run_activation_atlas(job: ActivationAtlas, ctx: JobContext) -> AtlasOutcome:
    return activation_atlas(job, seed=ctx.seed, generator=ctx.generator(torch.device("cpu")), reporter=ctx)


def activation_atlas_result(job: ActivationAtlas, outcome: AtlasOutcome) -> pb.ActivationAtlasResult:
    return pb.ActivationAtlasResult(
        layer=job.layer,
        grid_size=job.grid_size,
        coordinates=tensor(torch.from_numpy(outcome.coordinates)),
        sample_y=outcome.sample_y.tolist(),
        sample_x=outcome.sample_x.tolist(),
        cells=[
            pb.AtlasCell(
                row=cell.row,
                column=cell.column,
                count=cell.count,
                mean_activation=tensor(cell.mean),
                tile=generated_image(cell.tile),
                objective=cell.objective,
            )
            for cell in outcome.cells
        ],
        atlas_png=png(outcome.picture),
    )


KINDS: tuple[JobKind[Any, Any], ...] = (
    proto_kind(
        "embedding_map", pb.EmbeddingMapSpec, validate_embedding_map, run_embedding_map, embedding_map_result
    ),
    proto_kind(
        "top_activating",
        pb.TopActivatingSpec,
        validate_top_activating,
        run_top_activating,
        top_activating_result,
    ),
    proto_kind(
        "activation_atlas",
        pb.ActivationAtlasSpec,
        validate_activation_atlas,
        run_activation_atlas,
        activation_atlas_result,
    ),
)
