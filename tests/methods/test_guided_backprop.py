"""Guided backprop and deconvnet over gRPC equal Captum's `GuidedBackprop` and `Deconvolution`, although
the served networks use in-place ReLUs (which break Captum's hooks: the references use out-of-place
copies), including resnet18, whose blocks call one ReLU module twice; a model without ReLU modules is
refused with FAILED_PRECONDITION."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from captum.attr import Deconvolution, GuidedBackprop, Saliency
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc
from support.gradient_harness import (
    IMAGES,
    TARGETS,
    TOLERANCE,
    attribute,
    maps,
    reference_network,
    relative_error,
    request,
)

REFERENCES = {"guided_backprop": GuidedBackprop, "deconvnet": Deconvolution}
PARAMS = {"guided_backprop": pb.GuidedBackpropParams(), "deconvnet": pb.DeconvnetParams()}


@pytest.mark.parametrize("model", ["shapes", "resnet"])
@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_equals_captum_on_in_place_relus(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, repository: Path, model: str, method: str
) -> None:
    ours = maps(attribute(stub, request(model, **{method: PARAMS[method]})))
    network = reference_network(repository, model, input_gradients=True)
    for j, target in enumerate(TARGETS):
        reference = REFERENCES[method](network).attribute(IMAGES.clone(), target=target)
        assert relative_error(ours[j], reference) <= TOLERANCE
        plain = Saliency(network).attribute(IMAGES.clone(), target=target, abs=False)
        assert relative_error(ours[j], plain) > 0.1, "the ReLU rule was not applied"


def test_the_model_keeps_its_true_gradient_afterwards(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, repository: Path
) -> None:
    attribute(stub, request("shapes", guided_backprop=pb.GuidedBackpropParams()))
    ours = maps(attribute(stub, request("shapes", saliency=pb.SaliencyParams())))
    network = reference_network(repository, "shapes", input_gradients=True)
    reference = Saliency(network).attribute(IMAGES.clone(), target=TARGETS[0], abs=False)
    assert relative_error(ours[0], reference) <= TOLERANCE


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_a_model_without_relu_modules_is_refused(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, method: str
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request("vit", **{method: PARAMS[method]}))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "nn.ReLU" in error.value.details() and "saliency" in error.value.details()
