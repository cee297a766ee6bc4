"""Saliency equals Captum's `Saliency` (signed, per channel, and the paper's |max| over channels), on a
CNN with in-place ReLUs and on resnet18, run in process (`MethodRunner`) and over gRPC (top-k targets);
k targets cost one forward and k backwards."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from captum.attr import Saliency
from glassbox.methods.runner import MethodRunner
from glassbox.methods.service import Aggregation, OutputOptions
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc
from support.gradient_harness import (
    IMAGES,
    TARGETS,
    TOLERANCE,
    attribute,
    outcome_maps,
    reference_network,
    relative_error,
    request,
    tensor,
)


@pytest.mark.parametrize("model", ["shapes", "resnet"])
def test_saliency_equals_captum_per_channel(
    method_runner: Callable[[str], MethodRunner], repository: Path, model: str
) -> None:
    outcome = method_runner(model).attribute(IMAGES, "saliency", targets=TARGETS)
    network = reference_network(repository, model, input_gradients=True)
    ours = outcome_maps(outcome)
    assert ours.shape == (len(TARGETS), 3, 3, 64, 64)
    for j, target in enumerate(TARGETS):
        reference = Saliency(network).attribute(IMAGES.clone(), target=target, abs=False)
        assert relative_error(ours[j], reference) <= TOLERANCE
    assert (outcome.forward_passes, outcome.backward_passes) == (3, 3 * len(TARGETS))


def test_abs_max_aggregation_is_the_papers_saliency_map(
    method_runner: Callable[[str], MethodRunner], repository: Path
) -> None:
    output = OutputOptions(map=True, aggregation=Aggregation.ABS_MAX)
    outcome = method_runner("shapes").attribute(IMAGES, "saliency", targets=TARGETS, output=output)
    network = reference_network(repository, "shapes", input_gradients=True)
    ours = outcome_maps(outcome)
    for j, target in enumerate(TARGETS):
        reference = Saliency(network).attribute(IMAGES.clone(), target=target, abs=True).amax(dim=1)
        assert relative_error(ours[j], reference) <= TOLERANCE


def test_top_k_targets_are_the_models_most_probable_classes(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, repository: Path
) -> None:
    message = request("resnet", targets=None, saliency=pb.SaliencyParams())
    message.targets.top_k = 2
    response = attribute(stub, message)
    network = reference_network(repository, "resnet", input_gradients=True)
    with torch.no_grad():
        probabilities = network(IMAGES).softmax(dim=1)
    for i, image in enumerate(response.images):
        expected = probabilities[i].topk(2)
        assert [a.target.index for a in image.attributions] == expected.indices.tolist()
        for a, probability in zip(image.attributions, expected.values, strict=True):
            assert a.target.probability == pytest.approx(float(probability), abs=1e-5)
            reference = Saliency(network).attribute(
                IMAGES[i : i + 1].clone(), target=a.target.index, abs=False
            )[0]
            assert relative_error(tensor(a.map), reference) <= TOLERANCE
    assert (response.stats.forward_passes, response.stats.backward_passes) == (3, 6)
