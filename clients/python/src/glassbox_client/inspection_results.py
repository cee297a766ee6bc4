"""The typed results of the inspection jobs (inspection.proto's `embedding_map`, `top_activating` and
`activation_atlas`), as plain dataclasses with numpy arrays and PIL images.

    with GlassboxClient() as glassbox:
        found = glassbox.inspection.top_activating(
            "shapes", images="shapes-val", layer="features.14", channel=16, count=9
        )
        found.summary.save("top.png")
        print([(e.name, e.activation) for e in found.examples])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage

from glassbox_client._generated.glassbox.v1 import inspection_pb2 as pb
from glassbox_client.images import array_from_tensor, image_from_png


def _projection(value: int) -> str:
    return pb.Projection.Name(value).removeprefix("PROJECTION_").lower()


def _array(tensor: object) -> np.ndarray:
    array = array_from_tensor(tensor)  # type: ignore[arg-type]
    return array if array is not None else np.zeros((0,), np.float32)


@dataclass(frozen=True)
class EmbeddingLayout:
    """One 2-D layout: `coordinates` [N, 2] in set order, the thumbnails framed by true class
    (`by_label`, None without labels) and by prediction, and how well it separates the classes."""

    projection: str
    coordinates: np.ndarray
    by_label: PILImage.Image | None
    by_prediction: PILImage.Image | None
    knn_label_agreement: float
    explained_variance: float

    @classmethod
    def from_proto(cls, layout: pb.EmbeddingLayout) -> EmbeddingLayout:
        return cls(
            _projection(layout.projection),
            _array(layout.coordinates),
            image_from_png(layout.by_label_png),
            image_from_png(layout.by_prediction_png),
            layout.knn_label_agreement,
            layout.explained_variance,
        )


@dataclass(frozen=True)
class EmbeddingMap:
    """An `embedding_map` job's result: the pooled `embeddings` [N, D] of `layer`, labels (empty
    without), predictions and names in set order, and one layout per projection asked for."""

    job_id: str
    layer: str
    embeddings: np.ndarray
    labels: list[int]
    predictions: list[int]
    names: list[str]
    layouts: list[EmbeddingLayout]

    @classmethod
    def from_proto(cls, job_id: str, r: pb.EmbeddingMapResult) -> EmbeddingMap:
        return cls(
            job_id,
            r.layer,
            _array(r.embeddings),
            list(r.labels),
            list(r.predictions),
            list(r.names),
            [EmbeddingLayout.from_proto(layout) for layout in r.layouts],
        )

    def layout(self, projection: str) -> EmbeddingLayout:
        """The layout of "pca" or "tsne"; KeyError when it was not computed."""
        for layout in self.layouts:
            if layout.projection == projection:
                return layout
        raise KeyError(f"no {projection} layout; the result has {[x.projection for x in self.layouts]}")


@dataclass(frozen=True)
class TopActivatingExample:
    """One example: the image (`index`, `name`) and its ranking `activation`, the strongest position
    (y, x) in the layer's grid, its receptive-field `patch` box (top, left, height, width) and pixels,
    the gradient of the activation on the patch ([3, h, w] and as a picture), and the whole image with
    the patch framed. `label` is None when the set has no labels."""

    index: int
    name: str
    activation: float
    y: int
    x: int
    patch: tuple[int, int, int, int]
    patch_image: PILImage.Image | None
    patch_gradient: np.ndarray
    gradient_image: PILImage.Image | None
    image: PILImage.Image | None
    label: int | None
    prediction: int

    @classmethod
    def from_proto(cls, e: pb.TopActivatingExample) -> TopActivatingExample:
        box = (e.patch.top, e.patch.left, e.patch.height, e.patch.width)
        return cls(
            e.index,
            e.name,
            e.activation,
            e.y,
            e.x,
            box,
            image_from_png(e.patch_png),
            _array(e.patch_gradient),
            image_from_png(e.gradient_png),
            image_from_png(e.image_png),
            e.label if e.label >= 0 else None,
            e.prediction,
        )


@dataclass(frozen=True)
class TopActivating:
    """A `top_activating` job's result: the examples (highest first), every image's ranking value
    (`activations` [N]), the layer's receptive field (height, width) and the `summary` picture."""

    job_id: str
    layer: str
    channel: int
    examples: list[TopActivatingExample]
    activations: np.ndarray
    receptive_field: tuple[int, int]
    summary: PILImage.Image | None

    @classmethod
    def from_proto(cls, job_id: str, r: pb.TopActivatingResult) -> TopActivating:
        return cls(
            job_id,
            r.layer,
            r.channel,
            [TopActivatingExample.from_proto(e) for e in r.examples],
            _array(r.activations),
            (r.receptive_field_height, r.receptive_field_width),
            image_from_png(r.summary_png),
        )


@dataclass(frozen=True)
class AtlasCell:
    """One non-empty grid cell: position, how many activations fell in it, their mean [C], and the
    feature visualisation of the mean (`tile`, with its float pixels [3, H, W]) and its objective."""

    row: int
    column: int
    count: int
    mean_activation: np.ndarray
    tile: PILImage.Image | None
    tile_pixels: np.ndarray | None
    objective: float

    @classmethod
    def from_proto(cls, c: pb.AtlasCell) -> AtlasCell:
        tile_pixels = array_from_tensor(c.tile.pixels)
        return cls(
            c.row,
            c.column,
            c.count,
            _array(c.mean_activation),
            image_from_png(c.tile.png),
            tile_pixels,
            c.objective,
        )


@dataclass(frozen=True)
class ActivationAtlas:
    """An `activation_atlas` job's result: the layout `coordinates` [N, 2] in [0, 1], the position
    sampled in each image, the non-empty cells, and the assembled `atlas` picture."""

    job_id: str
    layer: str
    grid_size: int
    coordinates: np.ndarray
    sample_y: list[int]
    sample_x: list[int]
    cells: list[AtlasCell]
    atlas: PILImage.Image | None

    @classmethod
    def from_proto(cls, job_id: str, r: pb.ActivationAtlasResult) -> ActivationAtlas:
        return cls(
            job_id,
            r.layer,
            r.grid_size,
            _array(r.coordinates),
            list(r.sample_y),
            list(r.sample_x),
            [AtlasCell.from_proto(c) for c in r.cells],
            image_from_png(r.atlas_png),
        )
