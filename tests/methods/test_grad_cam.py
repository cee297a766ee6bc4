"""Grad-CAM over gRPC: the map equals Captum's `LayerGradCam` upsampled bilinearly (with and without
the ReLU), `layer_map` equals it at layer resolution, and the min-max scaled map equals
pytorch-grad-cam's `GradCAM` — on a CNN (default layer from model.toml), resnet18 and a vision
transformer whose token grid the server infers. Bad layers are refused naming the field."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc
from pytorch_grad_cam import GradCAM
from support.cam_references import grad_cam_maps, min_max
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


def top2(response: pb.AttributeResponse) -> list[list[int]]:
    """[target j][image i] class indices of a top-2 response."""
    return [[image.attributions[j].target.index for image in response.images] for j in range(2)]


def top2_request(model: str, **method: object) -> pb.AttributeRequest:
    message = request(model, targets=None, **method)
    message.targets.top_k = 2
    return message


@pytest.mark.parametrize(
    ("model", "layer"), [("shapes", ""), ("resnet", "layer4"), ("resnet", "layer3.1.conv2")]
)
@pytest.mark.parametrize("keep_negative", [False, True])
def test_grad_cam_equals_captum(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
    repository: Path,
    model: str,
    layer: str,
    keep_negative: bool,
) -> None:
    response = attribute(
        stub, top2_request(model, grad_cam=pb.GradCamParams(layer=layer, keep_negative=keep_negative))
    )
    network = reference_network(repository, model)
    module = network.net.get_submodule(layer or CAM_LAYERS[model])
    ours, layer_maps = maps(response), maps(response, "layer_map")
    for j, targets in enumerate(top2(response)):
        captum = LayerGradCam(network, module).attribute(
            IMAGES, target=targets, relu_attributions=not keep_negative
        )
        assert relative_error(layer_maps[j], captum[:, 0]) <= TOLERANCE
        upsampled = LayerAttribution.interpolate(captum, (64, 64), "bilinear")[:, 0]
        assert relative_error(ours[j], upsampled) <= TOLERANCE
    assert response.stats.forward_passes == 3 and response.stats.backward_passes == 6


@pytest.mark.parametrize("model", ["shapes", "resnet", "vit"])
def test_scaled_grad_cam_equals_pytorch_grad_cam(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, repository: Path, model: str
) -> None:
    response = attribute(stub, top2_request(model, grad_cam=pb.GradCamParams()))
    network = reference_network(repository, model)
    module = network.net.get_submodule(CAM_LAYERS[model])
    ours = maps(response)
    for j, targets in enumerate(top2(response)[:1]):
        reference = grad_cam_maps(GradCAM, network, module, IMAGES, targets, vit=model == "vit")
        assert np.abs(min_max(ours[j]) - reference).max() <= TOLERANCE


def test_token_layers_are_read_as_the_inferred_patch_grid(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
) -> None:
    response = attribute(stub, top2_request("vit", grad_cam=pb.GradCamParams()))
    assert maps(response, "layer_map").shape == (2, 3, 8, 8)
    assert maps(response).shape == (2, 3, 64, 64)


@pytest.mark.parametrize(
    ("layer", "words"),
    [("no.such.layer", "has no layer"), ("classifier.2", "cam_compatible"), ("fc", "cam_compatible")],
)
def test_bad_layers_are_refused_naming_the_field(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, layer: str, words: str
) -> None:
    model = "shapes" if layer.startswith("classifier") else "resnet"
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request(model, grad_cam=pb.GradCamParams(layer=layer)))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("grad_cam.layer") and words in error.value.details()


def test_a_cnn_without_default_layer_uses_its_last_spatial_layer(tmp_path: Path) -> None:
    from glassbox.methods.cam import resolve_cam_layer
    from glassbox.models.repository import ModelRepository
    from support.model_repository import write_model_version

    write_model_version(tmp_path, "plain", "1", seed=1)
    models = ModelRepository(tmp_path, device=torch.device("cpu"))
    models.load_all()
    assert resolve_cam_layer(models.get("plain"), "", field="grad_cam.layer").info.name == "features.14"
