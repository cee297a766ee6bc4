"""Activation atlases on the demo model, through the real JobService: one activation per image at the
reported random position (checked with the test's own hook), a grid over the reported layout with
exactly one tile per non-empty cell and each cell's mean, tiles that are rendered images (not the
grey starting noise), the atlas picture with a tile in each non-empty slot and white elsewhere, the
same result for the same seed, and bad specs refused naming the field."""

from __future__ import annotations

import io
from collections import Counter

import grpc
import numpy as np
import pytest
import torch
from glassbox.backends.torch_backend import TorchModel
from glassbox_client._generated.glassbox.v1 import inspection_pb2 as ins
from PIL import Image
from support.inspection_harness import (
    MODEL,
    ONNX_MODEL,
    assert_refused,
    layer_output,
    named,
    run_job,
    submit_error,
    tensor_of,
)

LAYER, IMAGES, GRID, TILE = "features.10", 96, 4, 64
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def atlas_spec(**fields: object) -> ins.ActivationAtlasSpec:
    values = {
        "model": MODEL,
        "seed": 4,
        "images": named(limit=IMAGES),
        "layer": LAYER,
        "grid_size": GRID,
        "steps": 48,
        "learning_rate": 0.1,
        "tile_size": TILE,
        **fields,
    }
    return ins.ActivationAtlasSpec(**values)


@pytest.fixture(scope="module")
def model(server) -> TorchModel:
    return server.server.context.repository.get(MODEL)


@pytest.fixture(scope="module")
def images(server) -> torch.Tensor:
    return server.server.context.repository.dataset(MODEL, "shapes-val", max_pixels=10**8).images[:IMAGES]


@pytest.fixture(scope="module")
def result(server) -> ins.ActivationAtlasResult:
    return run_job(server.channel, activation_atlas=atlas_spec()).activation_atlas


def cells_of(coordinates: np.ndarray, grid: int) -> np.ndarray:
    """(row, column) of each point laid out in [0, 1]²."""
    cells = np.minimum((coordinates * grid).astype(int), grid - 1)
    return np.stack([cells[:, 1], cells[:, 0]], axis=1)


def test_one_tile_per_non_empty_cell_holding_its_mean_activation(result, model, images) -> None:
    coordinates = tensor_of(result.coordinates).numpy()
    assert coordinates.shape == (IMAGES, 2) and coordinates.min() >= 0 and coordinates.max() <= 1
    ys, xs = np.array(result.sample_y), np.array(result.sample_x)
    assert ys.min() >= 0 and ys.max() < 16 and xs.min() >= 0 and xs.max() < 16
    sampled = layer_output(model, LAYER, images)[torch.arange(IMAGES), :, ys, xs]  # [N, 64]

    members = Counter(map(tuple, cells_of(coordinates, GRID).tolist()))
    assert [(c.row, c.column) for c in result.cells] == sorted(members)
    for cell in result.cells:
        assert cell.count == members[(cell.row, cell.column)]
        inside = (cells_of(coordinates, GRID) == (cell.row, cell.column)).all(1)
        assert torch.allclose(
            tensor_of(cell.mean_activation), sampled[torch.from_numpy(inside)].mean(0), atol=1e-5
        )
        assert tensor_of(cell.tile.pixels).shape == (3, TILE, TILE)


def direction_objective(model: TorchModel, pixels: torch.Tensor, direction: torch.Tensor) -> float:
    """Mean over positions of (a · v/|v|) × max(cos(a, v), 0.1)^4, by the test's own hook."""
    output = layer_output(model, LAYER, pixels[None])[0].flatten(1).T  # [positions, C]
    along = output @ (direction / direction.norm())
    cosine = torch.nn.functional.cosine_similarity(output, direction[None], dim=1)
    return float((along * cosine.clamp(min=0.1) ** 4).mean())


def test_each_tile_is_optimised_towards_its_cells_mean(result, model) -> None:
    grey = torch.full((3, TILE, TILE), 0.5)
    improved = 0
    for cell in result.cells:
        direction = tensor_of(cell.mean_activation)
        final = direction_objective(model, tensor_of(cell.tile.pixels), direction)
        assert cell.objective == pytest.approx(final, rel=1e-3, abs=1e-6)
        improved += final > 2 * direction_objective(model, grey, direction)
    assert improved >= 0.75 * len(result.cells)


def test_the_atlas_picture_has_a_tile_in_each_occupied_slot(result) -> None:
    picture = np.asarray(Image.open(io.BytesIO(result.atlas_png)))
    assert picture.shape == (GRID * TILE, GRID * TILE, 3)
    occupied = {(c.row, c.column) for c in result.cells}
    for row in range(GRID):
        for column in range(GRID):
            centre = picture[row * TILE + TILE // 2, column * TILE + TILE // 2]
            assert ((centre != 255).any()) == ((row, column) in occupied)


def test_the_same_seed_gives_the_same_atlas_and_min_count_empties_sparse_cells(server, result) -> None:
    again = run_job(server.channel, activation_atlas=atlas_spec()).activation_atlas
    assert again.atlas_png == result.atlas_png and list(again.sample_y) == list(result.sample_y)
    sparse = run_job(server.channel, activation_atlas=atlas_spec(min_count=4, steps=2)).activation_atlas
    assert {(c.row, c.column): c.count for c in sparse.cells} == {
        (c.row, c.column): c.count for c in result.cells if c.count >= 4
    }


def test_bad_specs_are_refused_naming_the_field(server) -> None:
    def refused(field: str, code: grpc.StatusCode = INVALID, **fields: object) -> None:
        error = submit_error(server.channel, activation_atlas=atlas_spec(**fields))
        assert_refused(error, code, f"activation_atlas.{field}")

    refused("layer", layer="classifier.1")
    refused("layer", layer="")
    refused("grid_size", grid_size=1)
    refused("grid_size", grid_size=33)
    refused("min_count", min_count=0)
    refused("steps", steps=0)
    refused("tile_size", tile_size=8)
    refused("learning_rate", learning_rate=0.0)
    refused("layout", layout=9)
    refused("images", images=named(limit=3))
    refused("model", grpc.StatusCode.FAILED_PRECONDITION, model=ONNX_MODEL)
