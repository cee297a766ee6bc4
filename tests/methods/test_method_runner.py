"""`MethodRunner` runs a method in this process on the server's path: its maps are the maps the server
returns for the same request, and it refuses what the server refuses, with the same error and field."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from glassbox.core.errors import FailedPrecondition, InvalidArgument
from glassbox.methods.runner import MethodRunner
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc
from support.gradient_harness import IMAGES, TARGETS, attribute, maps, outcome_maps, request

Runner = Callable[[str], MethodRunner]


def test_maps_equal_the_servers_for_the_same_request(
    method_runner: Runner, stub: attribution_service_pb2_grpc.AttributionServiceStub
) -> None:
    served = attribute(
        stub,
        request(
            "shapes",
            integrated_gradients=pb.IntegratedGradientsParams(
                steps=8, rule=pb.INTEGRATION_RULE_GAUSS_LEGENDRE
            ),
        ),
    )
    outcome = method_runner("shapes").attribute(
        IMAGES, "integrated_gradients", targets=TARGETS, steps=8, rule="gauss_legendre"
    )
    np.testing.assert_array_equal(outcome_maps(outcome), maps(served))
    assert (outcome.forward_passes, outcome.backward_passes) == (
        served.stats.forward_passes,
        served.stats.backward_passes,
    )


def test_labels_and_top_class_targets(method_runner: Runner) -> None:
    runner = method_runner("shapes")
    by_label = runner.attribute(IMAGES[:1], "saliency", targets=["square"])
    assert [a.target.label for a in by_label.images[0].attributions] == ["square"]
    top = runner.attribute(IMAGES[0], "saliency")
    assert len(top.images) == 1 and len(top.images[0].attributions) == 1


@pytest.mark.parametrize(
    ("method", "options", "field"),
    [
        ("no_such_method", {}, "method"),
        ("saliency", {"steps": 3}, "saliency.steps"),
        ("integrated_gradients", {"steps": 0}, "integrated_gradients.steps"),
        ("integrated_gradients", {"rule": "simpson"}, "integrated_gradients.rule"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(
    method_runner: Runner, method: str, options: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidArgument) as error:
        method_runner("shapes").attribute(IMAGES, method, targets=TARGETS, **options)
    assert error.value.field == field


def test_a_method_the_model_cannot_run_is_a_failed_precondition(method_runner: Runner) -> None:
    with pytest.raises(FailedPrecondition) as error:
        method_runner("vit").attribute(IMAGES[:1], "deep_lift", targets=TARGETS)
    assert error.value.field == "method"
