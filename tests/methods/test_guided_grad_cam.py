"""Guided Grad-CAM over gRPC equals Captum's `GuidedGradCam` (bilinear upsampling, as in the paper) on a
CNN with in-place ReLUs and on resnet18, from one forward per image; a model without ReLU modules is
refused with FAILED_PRECONDITION."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from captum.attr import GuidedGradCam
from conftest import RunningServer
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc
from gradient_harness import (
    CAM_LAYERS,
    IMAGES,
    TOLERANCE,
    attribute,
    maps,
    reference_network,
    relative_error,
    request,
)
from gradient_harness import write_repository as write_models


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_models(tmp_path_factory.mktemp("guided-grad-cam-models"), ("shapes", "resnet", "vit"))


@pytest.fixture(scope="module")
def stub(
    start_server: Callable[..., RunningServer], repository: Path
) -> attribution_service_pb2_grpc.AttributionServiceStub:
    server = start_server(model_repository=repository, cache={"enabled": False})
    return attribution_service_pb2_grpc.AttributionServiceStub(server.channel)


@pytest.mark.parametrize(("model", "layer"), [("shapes", ""), ("resnet", "layer4"), ("resnet", "layer2")])
def test_guided_grad_cam_equals_captum(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, repository: Path, model: str, layer: str
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
    # one forward; per target one backward to the layer and one guided backward to the input
    assert (response.stats.forward_passes, response.stats.backward_passes) == (3, 12)


def test_a_model_without_relu_modules_is_refused(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request("vit", guided_grad_cam=pb.GuidedGradCamParams()))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "grad_cam" in error.value.details()
