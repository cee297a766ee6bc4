"""inspection.proto ↔ core translations shared by the InspectionService servicer and the job kinds
(`wire.kinds.inspection`).
No computation. Field names in errors are relative to the request or the job spec."""

from __future__ import annotations

from collections.abc import Iterable

from glassbox_client._generated.glassbox.v1 import inspection_pb2 as pb

from glassbox.inspection.activations import Pooling
from glassbox.inspection.filters import FilterView
from glassbox.inspection.projection import Projection
from glassbox.inspection.receptive_field import Box
from glassbox.inspection.top_activating import Ranking
from glassbox.wire.fields import enum_value

POOLINGS = {
    pb.POOLING_UNSPECIFIED: Pooling.MEAN,
    pb.POOLING_MEAN: Pooling.MEAN,
    pb.POOLING_MAX: Pooling.MAX,
    pb.POOLING_FLATTEN: Pooling.FLATTEN,
}
POOLING_ENUMS = {
    Pooling.MEAN: pb.POOLING_MEAN,
    Pooling.MAX: pb.POOLING_MAX,
    Pooling.FLATTEN: pb.POOLING_FLATTEN,
}
FILTER_VIEWS = {
    pb.FILTER_VIEW_UNSPECIFIED: None,
    pb.FILTER_VIEW_COLOUR: FilterView.COLOUR,
    pb.FILTER_VIEW_MEAN: FilterView.MEAN,
    pb.FILTER_VIEW_PER_INPUT_CHANNEL: FilterView.PER_INPUT_CHANNEL,
}
FILTER_VIEW_ENUMS = {view: enum for enum, view in FILTER_VIEWS.items() if view is not None}
PROJECTIONS = {pb.PROJECTION_PCA: Projection.PCA, pb.PROJECTION_TSNE: Projection.TSNE}
PROJECTION_ENUMS = {projection: enum for enum, projection in PROJECTIONS.items()}

RANKINGS = {pb.RANKING_UNSPECIFIED: Ranking.MAX, pb.RANKING_MAX: Ranking.MAX, pb.RANKING_MEAN: Ranking.MEAN}


def pooling(value: int) -> Pooling:
    return enum_value(POOLINGS, value, "pooling", "Pooling")


def filter_view(value: int) -> FilterView | None:
    return enum_value(FILTER_VIEWS, value, "view", "FilterView")


def projections(values: Iterable[int], field: str = "projections") -> tuple[Projection, ...]:
    return tuple(enum_value(PROJECTIONS, v, f"{field}[{i}]", "Projection") for i, v in enumerate(values))


def pixel_box(box: Box) -> pb.PixelBox:
    return pb.PixelBox(top=box.top, left=box.left, height=box.height, width=box.width)
