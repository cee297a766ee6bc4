"""Embedding-map jobs on the demo model's validation set, through the real JobService: the t-SNE layout
separates the six classes (a 5-nearest-neighbour vote in 2-D agrees with the labels on at least 90%
of the images), the embeddings are the penultimate layer's, PCA matches scikit-learn's, the pictures
have the requested size, the same seed gives the same layout, and bad specs are refused naming the
field."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
import torch
from glassbox.backends.torch_backend import TorchModel
from glassbox.demo.shapes import generate
from glassbox_client._generated.glassbox.v1 import datasets_pb2
from glassbox_client._generated.glassbox.v1 import inspection_pb2 as ins
from PIL import Image
from sklearn.decomposition import PCA
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from support.inspection_harness import (
    MODEL,
    ONNX_MODEL,
    assert_refused,
    image_proto,
    layer_output,
    named,
    run_job,
    submit_error,
    tensor_of,
)

SET_SIZE = 240
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def model(server) -> TorchModel:
    return server.server.context.repository.get(MODEL)


@pytest.fixture(scope="module")
def dataset(server):
    return server.server.context.repository.dataset(MODEL, "shapes-val", max_pixels=10**8)


@pytest.fixture(scope="module")
def result(server) -> ins.EmbeddingMapResult:
    spec = ins.EmbeddingMapSpec(model=MODEL, seed=5, images=named(), canvas_size=400, thumbnail_size=20)
    return run_job(server.channel, embedding_map=spec).embedding_map


def knn_agreement(coordinates: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out accuracy of scikit-learn's 5-NN classifier in the layout."""
    predicted = cross_val_predict(KNeighborsClassifier(n_neighbors=5), coordinates, labels, cv=LeaveOneOut())
    return float((predicted == labels).mean())


def test_tsne_separates_the_six_classes(result, dataset) -> None:
    labels = dataset.labels.numpy()
    assert list(result.labels) == labels.tolist() and len(set(labels.tolist())) == 6
    tsne = next(layout for layout in result.layouts if layout.projection == ins.PROJECTION_TSNE)
    coordinates = tensor_of(tsne.coordinates).numpy()
    assert coordinates.shape == (SET_SIZE, 2)
    agreement = knn_agreement(coordinates, labels)
    assert agreement >= 0.9
    assert tsne.knn_label_agreement == pytest.approx(agreement, abs=0.02)
    assert np.isnan(tsne.explained_variance)


def test_embeddings_predictions_and_pca_are_the_models_own(result, model, dataset) -> None:
    assert result.layer == "classifier.1"
    embeddings = tensor_of(result.embeddings)
    features = layer_output(model, "features.14", dataset.images).flatten(2).mean(2)
    assert torch.allclose(embeddings, features, atol=1e-4)
    assert list(result.predictions) == model.logits(dataset.images).argmax(1).tolist()
    assert list(result.names) == [f"shapes-val[{i}]" for i in range(SET_SIZE)]

    pca_layout = next(layout for layout in result.layouts if layout.projection == ins.PROJECTION_PCA)
    reference = PCA(n_components=2).fit(embeddings.double().numpy())
    expected = reference.transform(embeddings.double().numpy())
    coordinates = tensor_of(pca_layout.coordinates).numpy()
    for axis in range(2):  # a component's sign is arbitrary
        sign = np.sign(np.dot(coordinates[:, axis], expected[:, axis]))
        assert np.allclose(coordinates[:, axis], sign * expected[:, axis], atol=1e-3)
    assert pca_layout.explained_variance == pytest.approx(reference.explained_variance_ratio_.sum(), rel=1e-4)


def test_the_pictures_show_every_layout_by_label_and_by_prediction(result) -> None:
    assert [layout.projection for layout in result.layouts] == [ins.PROJECTION_PCA, ins.PROJECTION_TSNE]
    for layout in result.layouts:
        for data in (layout.by_label_png, layout.by_prediction_png):
            picture = Image.open(io.BytesIO(data))
            assert picture.mode == "RGB" and picture.width == 400 and picture.height > 400
            array = np.asarray(picture)[:400]
            assert (array != 255).any(axis=2).mean() > 0.05  # thumbnails drawn on the white board


def test_the_same_seed_gives_the_same_layout_and_unlabelled_sets_work(server, result) -> None:
    images = generate(8, seed=21).images
    inline = datasets_pb2.ImageSet(
        inline=datasets_pb2.InlineImageSet(images=[image_proto(i) for i in images])
    )
    spec = ins.EmbeddingMapSpec(model=MODEL, seed=3, images=inline, perplexity=2.0, iterations=250)
    first = run_job(server.channel, embedding_map=spec).embedding_map
    second = run_job(server.channel, embedding_map=spec).embedding_map
    assert not first.labels and first.layouts[1].by_label_png == b""
    assert np.isnan(first.layouts[1].knn_label_agreement)
    assert first.layouts[1].by_prediction_png
    assert tensor_of(first.layouts[1].coordinates).equal(tensor_of(second.layouts[1].coordinates))


def test_bad_specs_are_refused_naming_the_field(server) -> None:
    def refused(field: str, code: grpc.StatusCode = INVALID, **fields: object) -> None:
        spec = ins.EmbeddingMapSpec(**{"model": MODEL, **fields})
        assert_refused(submit_error(server.channel, embedding_map=spec), code, f"embedding_map.{field}")

    empty = datasets_pb2.ImageSet(inline=datasets_pb2.InlineImageSet())
    refused("images.inline.images", images=empty)
    refused("images")
    refused("images", images=named(limit=3))
    refused("images.named", grpc.StatusCode.NOT_FOUND, images=datasets_pb2.ImageSet(named="nope"))
    refused("layer", images=named(limit=8), layer="features.99")
    refused("perplexity", images=named(limit=8), perplexity=8.0)
    refused("iterations", images=named(limit=8), iterations=10)
    refused("projections", images=named(limit=8), projections=[ins.PROJECTION_PCA, ins.PROJECTION_PCA])
    refused("projections[0]", images=named(limit=8), projections=[ins.PROJECTION_UNSPECIFIED])
    refused("pooling", images=named(limit=8), pooling=7)
    refused("canvas_size", images=named(limit=8), canvas_size=64)
    refused("model", grpc.StatusCode.FAILED_PRECONDITION, images=named(limit=8), model=ONNX_MODEL)
    small = ins.EmbeddingMapSpec(model=MODEL, images=named(limit=8), projections=[ins.PROJECTION_PCA])
    assert len(run_job(server.channel, embedding_map=small).embedding_map.layouts) == 1
