"""Gradient × input equals Captum's `InputXGradient` on a CNN with in-place ReLUs and on resnet18 (run in
process, `MethodRunner`); over gRPC, the SUM aggregation is the channel sum."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from captum.attr import InputXGradient
from glassbox.methods.runner import MethodRunner
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc
from support.gradient_harness import (
    IMAGES,
    TARGETS,
    TOLERANCE,
    attribute,
    maps,
    outcome_maps,
    reference_network,
    relative_error,
    request,
)


@pytest.mark.parametrize("model", ["shapes", "resnet"])
def test_gradient_x_input_equals_captum(
    method_runner: Callable[[str], MethodRunner], repository: Path, model: str
) -> None:
    outcome = method_runner(model).attribute(IMAGES, "gradient_x_input", targets=TARGETS)
    network = reference_network(repository, model, input_gradients=True)
    ours = outcome_maps(outcome)
    for j, target in enumerate(TARGETS):
        reference = InputXGradient(network).attribute(IMAGES.clone(), target=target)
        assert relative_error(ours[j], reference) <= TOLERANCE
    assert (outcome.forward_passes, outcome.backward_passes) == (3, 6)


def test_sum_aggregation_is_the_channel_sum(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, repository: Path
) -> None:
    per_channel = maps(attribute(stub, request("shapes", gradient_x_input=pb.GradientXInputParams())))
    summed = maps(
        attribute(
            stub,
            request("shapes", aggregation=pb.AGGREGATION_SUM, gradient_x_input=pb.GradientXInputParams()),
        )
    )
    assert summed.shape == (2, 3, 64, 64)
    assert relative_error(summed, per_channel.sum(axis=2)) <= 1e-6
