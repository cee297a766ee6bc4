"""Embedding maps: a layer's pooled activations over a dataset laid out in 2-D (PCA, t-SNE), drawn as a
thumbnail of each image at its position, framed by true and by predicted class, so class separation
and confusions can be seen (as in Karpathy's t-SNE maps of CNN codes)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from glassbox.backends.torch_backend import TorchModel
from glassbox.common import pictures
from glassbox.common.validation import check_range
from glassbox.core.errors import InvalidArgument
from glassbox.inspection.activations import Pooling, check_embedding_size, embed
from glassbox.inspection.layers import batch_count
from glassbox.inspection.projection import (
    Layout,
    Projection,
    check_tsne,
    default_perplexity,
    knn_label_agreement,
    project,
)
from glassbox.models.datasets import LabelledImages

MIN_IMAGES = 4
FRAME = 2
"""Width of a thumbnail's frame, pixels."""
WRONG = (0, 0, 0)
"""Outer frame colour of a wrongly predicted image."""
MAX_LEGEND_CLASSES = 60
"""The legend names the classes that occur (labels and predictions), at most this many."""


@dataclass(frozen=True)
class EmbeddingMap:
    """A checked embedding-map request; `layer` already checked against `model`."""

    model: TorchModel
    images: LabelledImages
    layer: str
    pooling: Pooling = Pooling.MEAN
    projections: tuple[Projection, ...] = (Projection.PCA, Projection.TSNE)
    perplexity: float | None = None
    iterations: int = 1000
    thumbnail_size: int = 28
    canvas_size: int = 800

    def __post_init__(self) -> None:
        if len(self.images) < MIN_IMAGES:
            raise InvalidArgument(
                f"a map needs at least {MIN_IMAGES} images, got {len(self.images)}", field="images"
            )
        if len(set(self.projections)) != len(self.projections) or not self.projections:
            raise InvalidArgument("list each projection at most once", field="projections")
        if Projection.TSNE in self.projections:
            check_tsne(len(self.images), self.tsne_perplexity, self.iterations)
        check_embedding_size(self.model, self.layer, self.pooling, len(self.images))
        check_range(self.thumbnail_size, 8, 128, "thumbnail_size")
        check_range(self.canvas_size, 128, 4096, "canvas_size")

    @property
    def tsne_perplexity(self) -> float:
        return self.perplexity if self.perplexity is not None else default_perplexity(len(self.images))


@dataclass(frozen=True)
class DrawnLayout:
    layout: Layout
    by_label: np.ndarray | None  # RGB uint8, None without labels
    by_prediction: np.ndarray
    knn_label_agreement: float


@dataclass(frozen=True)
class EmbeddingMapOutcome:
    vectors: torch.Tensor  # [N, D]
    predictions: torch.Tensor  # [N]
    layouts: list[DrawnLayout]


def map_steps(spec: EmbeddingMap) -> int:
    """Progress steps: one per forward batch, one per projection."""
    return batch_count(len(spec.images)) + len(spec.projections)


def draw(
    images: torch.Tensor,
    coordinates: np.ndarray,
    frames: list[list[tuple[int, int, int]]],
    thumbnail: int,
    canvas: int,
    classes: list[tuple[int, str]],
) -> np.ndarray:
    """Thumbnails at their coordinates (x right, y down, scaled to fill the canvas), each inside its
    frames (outermost first), later images on top; a legend strip of `classes` below."""
    thumbs = F.interpolate(images.float(), size=(thumbnail, thumbnail), mode="bilinear", antialias=True)
    low, high = coordinates.min(0), coordinates.max(0)
    span = np.where(high > low, high - low, 1.0)
    positions = np.round((coordinates - low) / span * (canvas - thumbnail)).astype(int)
    board = np.full((canvas, canvas, 3), 255, dtype=np.uint8)
    for i, (x, y) in enumerate(positions):
        tile = pictures.rgb(thumbs[i])
        for depth, colour in enumerate(frames[i]):
            inner = tile[depth * FRAME : thumbnail - depth * FRAME, depth * FRAME : thumbnail - depth * FRAME]
            inner[:] = pictures.framed(inner, colour, FRAME)
        board[y : y + thumbnail, x : x + thumbnail] = tile
    return np.concatenate([board, pictures.legend(classes, canvas)], axis=0)


def _draw_layout(
    spec: EmbeddingMap, layout: Layout, predictions: torch.Tensor
) -> tuple[np.ndarray | None, np.ndarray]:
    """The layout framed by label (None without labels) and by prediction (wrong ones framed black)."""
    labels = spec.images.labels
    present = set(predictions.tolist()) | (set() if labels is None else set(labels.tolist()))
    classes = [(c, spec.model.labels[c]) for c in sorted(present)[:MAX_LEGEND_CLASSES]]
    picture = partial(
        draw, spec.images.images, layout.coordinates, thumbnail=spec.thumbnail_size, canvas=spec.canvas_size
    )
    by_prediction = picture(
        [
            ([WRONG] if labels is not None and int(labels[n]) != int(p) else [])
            + [pictures.class_colour(int(p))]
            for n, p in enumerate(predictions)
        ],
        classes=classes,
    )
    if labels is None:
        return None, by_prediction
    return picture([[pictures.class_colour(int(c))] for c in labels], classes=classes), by_prediction


def embedding_map(
    spec: EmbeddingMap, *, seed: int, report: Callable[[int, str], None]
) -> EmbeddingMapOutcome:
    """Embed, project and draw. `report(step, message)` is called after each step."""
    batches = batch_count(len(spec.images))
    embedded = embed(
        spec.model,
        spec.layer,
        spec.images.images,
        spec.pooling,
        after_batch=lambda done: report(math.ceil(done / len(spec.images) * batches), "activations"),
    )
    labels = spec.images.labels
    layouts = []
    for i, projection in enumerate(spec.projections):
        layout = project(
            embedded.vectors.numpy(),
            projection,
            seed=seed,
            perplexity=spec.tsne_perplexity,
            iterations=spec.iterations,
        )
        by_label, by_prediction = _draw_layout(spec, layout, embedded.predictions)
        agreement = math.nan if labels is None else knn_label_agreement(layout.coordinates, labels.numpy())
        layouts.append(DrawnLayout(layout, by_label, by_prediction, agreement))
        report(batches + i + 1, projection.value)
    return EmbeddingMapOutcome(embedded.vectors, embedded.predictions, layouts)
