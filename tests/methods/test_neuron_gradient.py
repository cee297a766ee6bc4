"""Neuron gradient over gRPC equals Captum's `NeuronGradient` (and `NeuronGuidedBackprop` when guided)
for a neuron, a channel's sum and a layer's sum, on CNN and token layers; it explains a unit, not a
class, so each image gets one map without a target; bad layers and indices name their field."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from captum.attr import NeuronGradient, NeuronGuidedBackprop
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc
from support.gradient_harness import (
    IMAGES,
    TOLERANCE,
    attribute,
    maps,
    reference_network,
    relative_error,
    request,
)

CASES = [
    ("shapes", "features.6", pb.NEURON_SCOPE_NEURON, [5, 10, 20], (5, 10, 20)),
    ("shapes", "features.14", pb.NEURON_SCOPE_CHANNEL, [7], lambda out: out[:, 7].sum(dim=(1, 2))),
    ("resnet", "layer3.0.relu", pb.NEURON_SCOPE_LAYER, [], lambda out: out.sum(dim=(1, 2, 3))),
    ("resnet", "layer2", pb.NEURON_SCOPE_NEURON, [3, 1, 2], (3, 1, 2)),
    (
        "vit",
        "encoder.layers.encoder_layer_0.mlp",
        pb.NEURON_SCOPE_CHANNEL,
        [9],
        lambda out: out[..., 9].sum(dim=1),
    ),
]


ROWS = [(*case, False) for case in CASES] + [(*case, True) for case in CASES if case[0] != "vit"]
"""Every case plain, and guided where the model has ReLU modules (refusing the ViT is tested below)."""


@pytest.mark.parametrize(
    ("model", "layer", "scope", "index", "selector", "guided"),
    ROWS,
    ids=[f"{row[1]}-{'guided' if row[5] else 'plain'}" for row in ROWS],
)
def test_neuron_gradient_equals_captum(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
    repository: Path,
    model: str,
    layer: str,
    scope: int,
    index: list[int],
    selector: object,
    guided: bool,
) -> None:
    params = pb.NeuronGradientParams(layer=layer, scope=scope, index=index, guided=guided)
    response = attribute(stub, request(model, targets=None, neuron_gradient=params))
    assert all(
        len(image.attributions) == 1 and not image.attributions[0].HasField("target")
        for image in response.images
    )
    network = reference_network(repository, model)
    reference_class = NeuronGuidedBackprop if guided else NeuronGradient
    reference = reference_class(network, network.net.get_submodule(layer)).attribute(
        IMAGES, neuron_selector=selector
    )
    assert relative_error(maps(response)[0], reference) <= TOLERANCE
    assert (response.stats.forward_passes, response.stats.backward_passes) == (3, 3)


@pytest.mark.parametrize(
    ("model", "params", "field", "code"),
    [
        ("shapes", pb.NeuronGradientParams(), "neuron_gradient.layer", grpc.StatusCode.INVALID_ARGUMENT),
        (
            "shapes",
            pb.NeuronGradientParams(layer="nope"),
            "neuron_gradient.layer",
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "shapes",
            pb.NeuronGradientParams(layer="features.6", index=[1, 2]),
            "neuron_gradient.index",
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "shapes",
            pb.NeuronGradientParams(layer="features.6", index=[99, 0, 0]),
            "neuron_gradient.index[0]",
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "shapes",
            pb.NeuronGradientParams(layer="features.6", scope=pb.NEURON_SCOPE_CHANNEL, index=[32]),
            "neuron_gradient.index[0]",
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "shapes",
            pb.NeuronGradientParams(layer="features.6", scope=pb.NEURON_SCOPE_LAYER, index=[1]),
            "neuron_gradient.index",
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            "vit",
            pb.NeuronGradientParams(layer="encoder.ln", scope=pb.NEURON_SCOPE_LAYER, guided=True),
            "neuron_gradient.guided",
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
    ],
)
def test_bad_requests_name_their_field(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
    model: str,
    params: pb.NeuronGradientParams,
    field: str,
    code: grpc.StatusCode,
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request(model, targets=None, neuron_gradient=params))
    assert error.value.code() == code
    assert error.value.details().startswith(field + ":")


def test_class_targets_are_refused(stub: attribution_service_pb2_grpc.AttributionServiceStub) -> None:
    params = pb.NeuronGradientParams(layer="features.6", scope=pb.NEURON_SCOPE_LAYER)
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request("shapes", targets=(1,), neuron_gradient=params))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("targets:")
