"""Guided Grad-CAM over gRPC equals Captum's `GuidedGradCam` (bilinear upsampling, as in the paper) on a
CNN with in-place ReLUs and on resnet18, from one forward per image and, where no ReLU follows the layer,
one backward per target; a model without ReLU modules is refused with FAILED_PRECONDITION."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from captum.attr import GuidedGradCam
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc
from support.gradient_harness import (
    CAM_LAYERS,
    IMAGES,
    TOLERANCE,
    attribute,
    maps,
    reference_network,
    relative_error,
    request,
)


@pytest.mark.parametrize(
    ("model", "layer", "backward_per_target"),
    [("shapes", "", 1), ("resnet", "layer4", 1), ("resnet", "layer2", 2)],
)
def test_guided_grad_cam_equals_captum(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
    repository: Path,
    model: str,
    layer: str,
    backward_per_target: int,
) -> None:
    message = request(model, targets=None, guided_grad_cam=pb.GuidedGradCamParams(layer=layer))
    message.targets.top_k = 2
    response = attribute(stub, message)
    network = reference_network(repository, model)
    module = network.net.get_submodule(layer or CAM_LAYERS[model])
    ours = maps(response)
    assert ours.shape == (2, 3, 3, 64, 64)
    for j in range(2):
        targets = [image.attributions[j].target.index for image in response.images]
        reference = GuidedGradCam(network, module).attribute(
            IMAGES, target=targets, interpolate_mode="bilinear"
        )
        assert relative_error(ours[j], reference) <= TOLERANCE
    # One forward, then per target one guided backward to the input that also yields the layer's gradient
    # when no ReLU follows the layer (shapes' last ReLU, resnet's layer4), else a separate plain backward
    # to the layer (layer2: layers 3 and 4 have ReLUs whose guided rule would change it).
    assert response.stats.forward_passes == 3
    assert response.stats.backward_passes == 3 * 2 * backward_per_target


def test_a_model_without_relu_modules_is_refused(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request("vit", guided_grad_cam=pb.GuidedGradCamParams()))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "grad_cam" in error.value.details()
