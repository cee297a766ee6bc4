"""Core checks of which layers inspection uses: the penultimate layer of the demo CNN and of a small
vision transformer, layer shape checks naming the field, and the size limit on flattened embeddings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from glassbox.core.errors import InvalidArgument
from glassbox.inspection.activations import MAX_EMBEDDING_VALUES, Pooling, check_embedding_size, embed
from glassbox.inspection.layers import output_shape, penultimate_layer
from glassbox.models.repository import ModelRepository
from support.model_repository import write_model_version
from support.paths import MODELS


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    root = tmp_path_factory.mktemp("models")
    write_model_version(root, "vit", "1", architecture="glassbox.tiny_vit")
    shutil.copytree(MODELS / "shapes", root / "shapes")  # a symlink out of the repository would be skipped
    repository = ModelRepository(Path(root), device=torch.device("cpu"))
    repository.load_all()
    return repository


def test_the_penultimate_layer_feeds_the_classifier(repository) -> None:
    assert penultimate_layer(repository.get("shapes")) == "classifier.1"
    vit = repository.get("vit")
    layer = penultimate_layer(vit)
    assert len(vit.layer_info(layer).output_shape) == 2  # the encoder's tokens [T, C]
    vectors = embed(vit, layer, torch.rand(2, 3, 64, 64), Pooling.MEAN).vectors
    assert vectors.shape == (2, 64)


def test_layer_shapes_and_embedding_sizes_are_checked(repository) -> None:
    shapes = repository.get("shapes")
    with pytest.raises(InvalidArgument) as caught:
        output_shape(shapes, "classifier.1", "layer", (3,))
    assert caught.value.field == "layer" and "[C, H, W]" in caught.value.message
    most = MAX_EMBEDDING_VALUES // (16 * 64 * 64)  # images whose flattened features.0 fit
    check_embedding_size(shapes, "features.0", Pooling.FLATTEN, most)
    with pytest.raises(InvalidArgument) as caught:
        check_embedding_size(shapes, "features.0", Pooling.FLATTEN, most + 1)
    assert caught.value.field == "pooling"
    check_embedding_size(shapes, "features.0", Pooling.MEAN, 4096)
