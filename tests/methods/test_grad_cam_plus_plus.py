"""Grad-CAM++ over gRPC: the min-max scaled map equals pytorch-grad-cam's `GradCAMPlusPlus` on a CNN,
resnet18 and a vision transformer (token grid inferred by the server); one backward per target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc
from pytorch_grad_cam import GradCAMPlusPlus
from support.cam_references import grad_cam_maps, min_max
from support.gradient_harness import (
    CAM_LAYERS,
    IMAGES,
    TOLERANCE,
    attribute,
    maps,
    reference_network,
    request,
)


@pytest.mark.parametrize("model", ["shapes", "resnet", "vit"])
def test_scaled_grad_cam_plus_plus_equals_pytorch_grad_cam(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, repository: Path, model: str
) -> None:
    message = request(model, targets=None, grad_cam_plus_plus=pb.GradCamPlusPlusParams())
    message.targets.top_k = 2
    response = attribute(stub, message)
    network = reference_network(repository, model)
    module = network.net.get_submodule(CAM_LAYERS[model])
    ours = maps(response)
    assert maps(response, "layer_map").shape[:2] == (2, 3)
    for j in range(2):
        targets = [image.attributions[j].target.index for image in response.images]
        reference = grad_cam_maps(GradCAMPlusPlus, network, module, IMAGES, targets, vit=model == "vit")
        assert np.abs(min_max(ours[j]) - reference).max() <= TOLERANCE
    assert (response.stats.forward_passes, response.stats.backward_passes) == (3, 6)
