"""Activation atlases (Carter, Armstrong, Schubert, Johnson & Olah 2019, "Activation Atlas", Distill).

One activation vector per image at a random position of the layer's grid, laid out in 2-D (t-SNE or
PCA), a grid over the layout, the mean vector of each non-empty cell, and a feature visualisation of
each mean (the generative package's `visualise` with a `Direction` objective), assembled into one
picture where each tile is sized by how many activations its cell holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from glassbox.backends.torch_backend import TorchModel
from glassbox.common import pictures
from glassbox.common.validation import MAX_BATCH, check_learning_rate, check_range, check_steps
from glassbox.config import GenerativeJobLimits
from glassbox.core.errors import InvalidArgument
from glassbox.generative.feature_visualisation import FeatureVisualisation, visualise
from glassbox.generative.optimise import StepReporter, StepSpan
from glassbox.generative.parametrisations import ParametrisationSettings
from glassbox.inspection.direction import Direction
from glassbox.inspection.layers import batch_count, layer_batches, output_shape
from glassbox.inspection.projection import Projection, default_perplexity, project
from glassbox.models.datasets import LabelledImages

MIN_IMAGES = 4
MIN_TILE_SCALE = 0.25
TILE_PARAMETRISATION = ParametrisationSettings(init_sd=0.1)
"""Lucent's Fourier, decorrelated image, started from stronger noise than its 0.01: on small networks
the central units are dead on near-grey images and the cosine-weighted objective then has almost no
gradient (at 0.01, a few dozen steps leave most tiles grey on the demo model)."""


@dataclass(frozen=True)
class ActivationAtlas:
    """A checked atlas request."""

    model: TorchModel
    images: LabelledImages
    layer: str
    tile_size: int
    layout: Projection = Projection.TSNE
    grid_size: int = 8
    min_count: int = 1
    steps: int = 256
    learning_rate: float = 0.05
    limits: GenerativeJobLimits = field(default_factory=GenerativeJobLimits, compare=False, repr=False)
    """The operator's caps (`jobs.limits.generative`); the embedded defaults outside a server."""

    def __post_init__(self) -> None:
        output_shape(self.model, self.layer, "layer", (3,))
        if len(self.images) < MIN_IMAGES:
            raise InvalidArgument(
                f"an atlas needs at least {MIN_IMAGES} images, got {len(self.images)}", field="images"
            )
        check_range(self.grid_size, 2, 32, "grid_size")
        check_range(self.min_count, 1, len(self.images), "min_count")
        check_steps(self.steps, self.limits)
        check_learning_rate(self.learning_rate, self.limits)
        check_range(self.tile_size, 16, 256, "tile_size")


@dataclass(frozen=True)
class Cell:
    row: int
    column: int
    count: int
    mean: torch.Tensor  # [C]
    tile: torch.Tensor  # [3, tile, tile] in [0, 1]
    objective: float


@dataclass(frozen=True)
class AtlasOutcome:
    coordinates: np.ndarray  # [N, 2] in [0, 1]
    sample_y: torch.Tensor
    sample_x: torch.Tensor
    cells: list[Cell]
    picture: np.ndarray  # RGB uint8


def _sample(
    spec: ActivationAtlas, generator: torch.Generator, reporter: StepReporter, total: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One activation vector per image at a random position: ([N, C], y [N], x [N])."""
    _, height, width = spec.model.layer_info(spec.layer).output_shape
    count = len(spec.images)
    ys = torch.randint(height, (count,), generator=generator)
    xs = torch.randint(width, (count,), generator=generator)
    batches = batch_count(count)
    vectors = []
    for batch in layer_batches(
        spec.model,
        spec.layer,
        spec.images.images,
        after_batch=lambda done: reporter.report(-(-done * batches // count), total, message="activations"),
    ):
        device = batch.outputs.device
        rows = slice(batch.start, batch.start + batch.outputs.shape[0])
        index = torch.arange(batch.outputs.shape[0], device=device)
        picked = batch.outputs[index, :, ys[rows].to(device), xs[rows].to(device)]
        vectors.append(picked.float().cpu())
    return torch.cat(vectors), ys, xs


def _unit_square(coordinates: np.ndarray) -> np.ndarray:
    low, high = coordinates.min(0), coordinates.max(0)
    span = high - low
    return np.where(span > 0, (coordinates - low) / np.where(span > 0, span, 1.0), 0.5).astype(np.float32)


def _assemble(cells: list[Cell], grid_size: int, tile_size: int) -> np.ndarray:
    board = np.full((grid_size * tile_size, grid_size * tile_size, 3), 255, dtype=np.uint8)
    largest = max(cell.count for cell in cells)
    for cell in cells:
        side = max(1, round(tile_size * max(MIN_TILE_SCALE, math.sqrt(cell.count / largest))))
        tile = F.interpolate(cell.tile[None], size=(side, side), mode="bilinear", antialias=True)[0]
        top = cell.row * tile_size + (tile_size - side) // 2
        left = cell.column * tile_size + (tile_size - side) // 2
        board[top : top + side, left : left + side] = pictures.rgb(tile)
    return board


def atlas_steps(spec: ActivationAtlas, cells: int) -> int:
    """StepSpan steps: one per forward batch, the layout, and the optimisation steps of each batch of
    cells visualised together."""
    return batch_count(len(spec.images)) + 1 + math.ceil(cells / MAX_BATCH) * spec.steps


def activation_atlas(
    spec: ActivationAtlas, *, seed: int, generator: torch.Generator, reporter: StepReporter
) -> AtlasOutcome:
    """Sample, lay out, grid, visualise each non-empty cell, assemble. StepSpan totals are provisional
    (the cell count is unknown) until the layout is done."""
    provisional = atlas_steps(spec, spec.grid_size**2)
    vectors, ys, xs = _sample(spec, generator, reporter, provisional)
    layout = project(
        vectors.numpy(),
        spec.layout,
        seed=seed,
        perplexity=default_perplexity(len(vectors)),
        iterations=1000,
    )
    coordinates = _unit_square(layout.coordinates)
    cell_of = np.minimum((coordinates * spec.grid_size).astype(int), spec.grid_size - 1)
    keys = cell_of[:, 1] * spec.grid_size + cell_of[:, 0]
    occupied = [k for k in np.unique(keys) if (keys == k).sum() >= spec.min_count]
    means = torch.stack([vectors[torch.from_numpy(keys == k)].mean(0) for k in occupied])
    done = batch_count(len(spec.images)) + 1
    total = atlas_steps(spec, len(occupied))
    reporter.report(done, total, message="layout")
    cells: list[Cell] = []
    for start in range(0, len(occupied), MAX_BATCH):
        directions = means[start : start + MAX_BATCH]
        rendered = visualise(
            FeatureVisualisation(
                model=spec.model,
                objective=Direction(spec.layer, directions).bind(spec.model, "layer"),
                parametrisation=TILE_PARAMETRISATION,
                height=spec.tile_size,
                width=spec.tile_size,
                batch=len(directions),
                steps=spec.steps,
                learning_rate=spec.learning_rate,
            ),
            generator=generator,
            progress=StepSpan(reporter, total, done, f"cells {start + 1}-{start + len(directions)}"),
        )
        done += spec.steps
        for i, key in enumerate(occupied[start : start + MAX_BATCH]):
            row, column = divmod(int(key), spec.grid_size)
            cells.append(
                Cell(
                    row=row,
                    column=column,
                    count=int((keys == key).sum()),
                    mean=directions[i],
                    tile=rendered.images[i],
                    objective=float(rendered.final_objective[i]),
                )
            )
    return AtlasOutcome(coordinates, ys, xs, cells, _assemble(cells, spec.grid_size, spec.tile_size))
