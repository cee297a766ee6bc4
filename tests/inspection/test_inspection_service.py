"""InspectionService over gRPC on the demo model: GetFilters draws the first layer in colour and deeper
layers per input channel or averaged; GetActivations ranks channels by mean activation and keeps the
top k; Embed defaults to the penultimate layer and pools to vectors. Bad layers, indices and image
lists are INVALID_ARGUMENT naming the field, ONNX models FAILED_PRECONDITION, and the server keeps
serving. The typed client's `inspection` calls give the same numbers."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
import torch
from glassbox.backends.torch_backend import TorchModel
from glassbox.demo.shapes import generate
from glassbox_client import GlassboxClient
from glassbox_client._generated.glassbox.v1 import inspection_pb2 as pb
from glassbox_client._generated.glassbox.v1 import inspection_pb2_grpc
from PIL import Image
from support.inspection_harness import MODEL, ONNX_MODEL, assert_refused, image_proto, layer_output, tensor_of

IMAGES = generate(6, seed=11)


@pytest.fixture(scope="module")
def stub(server) -> inspection_pb2_grpc.InspectionServiceStub:
    return inspection_pb2_grpc.InspectionServiceStub(server.channel)


@pytest.fixture(scope="module")
def model(server) -> TorchModel:
    return server.server.context.repository.get(MODEL)


def refused(call, request, code: grpc.StatusCode, field: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    assert_refused(caught.value, code, field)


def png_array(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.mode == "RGB"
    return np.asarray(image)


def test_first_layer_filters_are_drawn_in_colour_from_the_raw_weights(stub, model) -> None:
    response = stub.GetFilters(pb.GetFiltersRequest(model=MODEL), timeout=30)
    weights = model.module.net.get_submodule("features.0").weight.detach().float()
    assert response.layer == "features.0" and response.view == pb.FILTER_VIEW_COLOUR
    assert torch.equal(tensor_of(response.weights), weights)
    assert (response.grid_rows, response.grid_columns, response.tile_size) == (4, 4, 24)
    picture = png_array(response.grid_png)
    assert picture.shape == (4 * 25 - 1, 4 * 25 - 1, 3)
    for index in (0, 5, 15):
        row, column = divmod(index, 4)
        kernel = weights[index]
        expected = kernel / kernel.abs().max() / 2 + 0.5  # 0 is mid-grey, the largest |weight| 0 or 1
        for ky, kx in ((0, 0), (1, 2), (2, 1)):
            pixel = picture[row * 25 + ky * 8 + 4, column * 25 + kx * 8 + 4]
            assert np.abs(pixel.astype(float) - expected[:, ky, kx].numpy() * 255).max() <= 1.0


def test_deeper_layers_are_drawn_as_means_or_per_input_channel(stub, model) -> None:
    weights = model.module.net.get_submodule("features.4").weight.detach().float()  # [32, 16, 3, 3]
    mean = stub.GetFilters(pb.GetFiltersRequest(model=MODEL, layer="features.4"), timeout=30)
    assert mean.view == pb.FILTER_VIEW_MEAN
    assert (mean.grid_rows, mean.grid_columns) == (6, 6)
    per_input = stub.GetFilters(
        pb.GetFiltersRequest(model=MODEL, layer="features.4", view=pb.FILTER_VIEW_PER_INPUT_CHANNEL),
        timeout=30,
    )
    assert (per_input.grid_rows, per_input.grid_columns) == (32, 16)
    assert png_array(per_input.grid_png).shape == (32 * 25 - 1, 16 * 25 - 1, 3)
    assert torch.equal(tensor_of(per_input.weights), weights)
    # The strongest weight of the layer is drawn at the end of the diverging scale (deep red or blue).
    out, into, ky, kx = np.unravel_index(int(weights.abs().argmax()), weights.shape)
    pixel = png_array(per_input.grid_png)[out * 25 + ky * 8 + 4, into * 25 + kx * 8 + 4]
    assert tuple(pixel) in ((103, 0, 31), (5, 48, 97))


def test_activations_rank_channels_by_mean_and_keep_the_top_k(stub, model) -> None:
    image = IMAGES.images[2]
    request = pb.GetActivationsRequest(model=MODEL, layer="features.10", image=image_proto(image), top_k=5)
    response = stub.GetActivations(request, timeout=30)
    maps = layer_output(model, "features.10", image[None])[0]  # [64, 16, 16]
    means = maps.flatten(1).mean(1)
    expected = torch.sort(means, descending=True, stable=True).indices[:5]
    assert [c.channel for c in response.channels] == expected.tolist()
    assert [c.mean for c in response.channels] == pytest.approx(means[expected].tolist(), rel=1e-5)
    assert [c.max for c in response.channels] == pytest.approx(
        maps[expected].flatten(1).amax(1).tolist(), rel=1e-5
    )
    assert torch.allclose(tensor_of(response.activations), maps[expected], atol=1e-5)
    assert response.layer_channels == 64 and (response.grid_rows, response.grid_columns) == (2, 3)
    assert png_array(response.grid_png).shape == (2 * 33 - 1, 3 * 33 - 1, 3)

    everything = stub.GetActivations(
        pb.GetActivationsRequest(model=MODEL, layer="features.10", image=image_proto(image)), timeout=30
    )
    assert len(everything.channels) == 64 and tensor_of(everything.activations).shape == (64, 16, 16)
    assert [c.channel for c in everything.channels][:5] == expected.tolist()


def test_embed_defaults_to_the_penultimate_layer_whose_vectors_give_the_logits(stub, model) -> None:
    request = pb.EmbedRequest(model=MODEL, images=[image_proto(i) for i in IMAGES.images])
    response = stub.Embed(request, timeout=30)
    assert response.layer == "classifier.1" and response.pooling == pb.POOLING_MEAN
    vectors = tensor_of(response.embeddings)
    assert vectors.shape == (6, 128)
    linear = model.module.net.get_submodule("classifier.2")
    with torch.no_grad():
        logits = linear(vectors)
    assert torch.allclose(logits, model.logits(IMAGES.images), atol=1e-4)

    features = layer_output(model, "features.14", IMAGES.images)
    for pooling, expected in (
        (pb.POOLING_MAX, features.flatten(2).amax(2)),
        (pb.POOLING_MEAN, features.flatten(2).mean(2)),
        (pb.POOLING_FLATTEN, features.flatten(1)),
    ):
        pooled = stub.Embed(
            pb.EmbedRequest(model=MODEL, layer="features.14", pooling=pooling, images=request.images),
            timeout=30,
        )
        assert torch.allclose(tensor_of(pooled.embeddings), expected, atol=1e-5)


def test_bad_requests_name_the_field_and_the_server_keeps_serving(stub) -> None:
    image = image_proto(IMAGES.images[0])
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    refused(stub.GetFilters, pb.GetFiltersRequest(model=MODEL, layer="features.99"), invalid, "layer")
    refused(stub.GetFilters, pb.GetFiltersRequest(model=MODEL, layer="features.1"), invalid, "layer")
    refused(
        stub.GetFilters,
        pb.GetFiltersRequest(model=MODEL, layer="features.4", view=pb.FILTER_VIEW_COLOUR),
        invalid,
        "view",
    )
    refused(stub.GetFilters, pb.GetFiltersRequest(model=MODEL, view=42), invalid, "view")
    refused(
        stub.GetActivations,
        pb.GetActivationsRequest(model=MODEL, layer="nope", image=image),
        invalid,
        "layer",
    )
    refused(stub.GetActivations, pb.GetActivationsRequest(model=MODEL, image=image), invalid, "layer")
    refused(
        stub.GetActivations,
        pb.GetActivationsRequest(model=MODEL, layer="features.10", image=image, top_k=65),
        invalid,
        "top_k",
    )
    refused(stub.GetActivations, pb.GetActivationsRequest(model=MODEL, layer="features.10"), invalid, "image")
    refused(stub.Embed, pb.EmbedRequest(model=MODEL), invalid, "images")
    refused(stub.Embed, pb.EmbedRequest(model=MODEL, layer="features.x", images=[image]), invalid, "layer")
    refused(stub.Embed, pb.EmbedRequest(model=MODEL, pooling=9, images=[image]), invalid, "pooling")
    refused(
        stub.Embed, pb.EmbedRequest(model="no-such-model", images=[image]), grpc.StatusCode.NOT_FOUND, "model"
    )
    assert stub.GetFilters(pb.GetFiltersRequest(model=MODEL), timeout=30).layer == "features.0"


def test_onnx_models_expose_no_layers_and_are_refused_clearly(stub) -> None:
    image = image_proto(IMAGES.images[0])
    precondition = grpc.StatusCode.FAILED_PRECONDITION
    for call, request in (
        (stub.GetFilters, pb.GetFiltersRequest(model=ONNX_MODEL)),
        (stub.GetActivations, pb.GetActivationsRequest(model=ONNX_MODEL, layer="features.0", image=image)),
        (stub.Embed, pb.EmbedRequest(model=ONNX_MODEL, images=[image])),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(request, timeout=30)
        assert_refused(caught.value, precondition, "model")
        assert "onnxruntime" in caught.value.details() and "torch model" in caught.value.details()


def test_the_typed_client_returns_arrays_and_pictures(server, model) -> None:
    with GlassboxClient(server.address) as glassbox:
        assert glassbox.health("glassbox.v1.InspectionService") == "SERVING"
        drawn = glassbox.inspection.filters(model=MODEL, layer="features.8", view="per_input_channel")
        assert drawn.view == "per_input_channel" and drawn.weights.shape == (64, 32, 3, 3)
        assert drawn.grid.size == (32 * 25 - 1, 64 * 25 - 1)
        image = IMAGES.images[4]
        ranked = glassbox.inspection.activations(image.numpy(), model=MODEL, layer="features.14", top_k=3)
        assert ranked.maps.shape == (3, 8, 8) and ranked.layer_channels == 128
        expected = layer_output(model, "features.14", image[None])[0].flatten(1).mean(1)
        assert [c.channel for c in ranked.channels] == torch.sort(expected, descending=True).indices[
            :3
        ].tolist()
        embedded = glassbox.inspection.embed(
            [i.numpy() for i in IMAGES.images[:2]], model=MODEL, pooling="max"
        )
        assert embedded.layer == "classifier.1" and embedded.pooling == "max"
        assert embedded.vectors.shape == (2, 128)
