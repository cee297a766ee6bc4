"""Exact mode (`[explain] mode = "exact"`): the network served as its user built it (contiguous layout,
no BatchNorm folding, eager torch for every pass), so that maps equal Captum run on the user's own
network, not only on a copy in the server's layout. In the fast mode densenet121's saliency differs from
that by 5e-2 of its maximum (float32 rounding of the channels_last layout flips ReLUs near zero).

Score-CAM, whose softmax over the channels amplifies logit differences, is checked against a float64
implementation on mobilenet_v3_small in both modes: in the fast mode with ONNX Runtime configured as the
forward engine, its masked passes run on an engine that agrees with eager torch to 1e-5 of the largest
logit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop, NeuronGradient, Saliency
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc, model_service_pb2_grpc
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as model_pb
from glassbox_client.types import ModelInfo
from support.gradient_harness import (
    IMAGES,
    TARGETS,
    TOLERANCE,
    attribute,
    maps,
    relative_error,
    request,
    user_network,
    write_calibrated_version,
)
from support.gradient_harness import write_repository as write_models
from support.servers import RunningServer

NEURON_LAYER = "features.denseblock2"
SCORE_CAM_LAYER = "features.9"
"""mobilenet_v3_small's block at 1/16 of the input (4×4 at 64×64), 96 channels: 96 masked passes per image."""


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_models(tmp_path_factory.mktemp("exact-models"), ("densenet",), explain='mode = "exact"\n')
    for name, explain in [
        ("mobilenet-exact", 'mode = "exact"\n'),
        ("mobilenet-onnx", 'forward_engine = "onnxruntime"\n'),
    ]:
        explain = f'[explain]\ndefault_cam_layer = "{SCORE_CAM_LAYER}"\n{explain}'
        write_calibrated_version(root, name, "mobilenet_v3_small", explain=explain)
    return root


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer], repository: Path) -> RunningServer:
    return start_server(model_repository=repository, cache={"enabled": False})


@pytest.fixture(scope="module")
def stub(server: RunningServer) -> attribution_service_pb2_grpc.AttributionServiceStub:
    return attribution_service_pb2_grpc.AttributionServiceStub(server.channel)


@pytest.fixture(scope="module")
def densenet(repository: Path) -> torch.nn.Module:
    return user_network(repository, "densenet", "densenet121")


def test_get_model_says_which_mode_and_engine_serve(server: RunningServer) -> None:
    models = model_service_pb2_grpc.ModelServiceStub(server.channel)
    info = {
        name: models.GetModel(model_pb.GetModelRequest(model=name), timeout=30).model
        for name in ("densenet", "mobilenet-exact", "mobilenet-onnx")
    }
    assert info["densenet"].explain_mode == model_pb.EXPLAIN_MODE_EXACT
    assert info["densenet"].forward_engine == "torch"
    assert info["mobilenet-onnx"].explain_mode == model_pb.EXPLAIN_MODE_FAST
    assert info["mobilenet-onnx"].forward_engine == "onnxruntime"
    typed = ModelInfo.from_proto(info["densenet"])
    assert (typed.explain_mode, typed.forward_engine) == ("exact", "torch")


@pytest.mark.parametrize("method", ["saliency", "guided_backprop"])
def test_gradients_equal_captum_on_the_users_own_network(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, densenet: torch.nn.Module, method: str
) -> None:
    params = {"saliency": pb.SaliencyParams(), "guided_backprop": pb.GuidedBackpropParams()}[method]
    ours = maps(attribute(stub, request("densenet", **{method: params})))
    for j, target in enumerate(TARGETS):
        if method == "saliency":
            reference = Saliency(densenet).attribute(IMAGES.clone(), target=target, abs=False)
        else:
            reference = GuidedBackprop(densenet).attribute(IMAGES.clone(), target=target)
        assert relative_error(ours[j], reference) <= TOLERANCE


def test_neuron_gradient_equals_captum_on_the_users_own_network(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, densenet: torch.nn.Module
) -> None:
    params = pb.NeuronGradientParams(layer=NEURON_LAYER, scope=pb.NEURON_SCOPE_CHANNEL, index=[3])
    ours = maps(attribute(stub, request("densenet", targets=None, neuron_gradient=params)))[0]
    layer = densenet.net.get_submodule(NEURON_LAYER)
    reference = NeuronGradient(densenet, layer).attribute(
        IMAGES.clone(), neuron_selector=lambda activations: activations[:, 3].flatten(1).sum(dim=1)
    )
    assert relative_error(ours, reference) <= TOLERANCE


def score_cam_float64(network: torch.nn.Module, layer: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    """Score-CAM from the formula in float64 (as methods/score_cam.py documents it): maps [targets, images,
    H, W] for TARGETS."""
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
    size = images.shape[2:]
    maps_by_target: list[list[torch.Tensor]] = [[] for _ in TARGETS]
    with torch.no_grad():
        network(images)
        handle.remove()
        for i, activations in enumerate(captured[0]):
            masks = F.interpolate(activations[None], size=size, mode="bilinear", align_corners=True)[0]
            low = masks.amin(dim=(1, 2), keepdim=True)
            high = masks.amax(dim=(1, 2), keepdim=True)
            scores = network(images[i][None] * ((masks - low) / (high - low + 1e-8))[:, None])
            for j, target in enumerate(TARGETS):
                weights = scores[:, target].softmax(dim=0)
                cam = (weights[:, None, None] * activations).sum(dim=0).clamp(min=0)
                upsampled = F.interpolate(cam[None, None], size=size, mode="bilinear", align_corners=False)
                maps_by_target[j].append(upsampled[0, 0])
    return np.stack([torch.stack(row).numpy() for row in maps_by_target])


@pytest.mark.parametrize("model", ["mobilenet-exact", "mobilenet-onnx"])
def test_score_cam_equals_a_float64_reference(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, repository: Path, model: str
) -> None:
    ours = maps(attribute(stub, request(model, score_cam=pb.ScoreCamParams())))
    network = user_network(repository, model, "mobilenet_v3_small", torch.float64)
    reference = score_cam_float64(network, network.net.get_submodule(SCORE_CAM_LAYER), IMAGES.double())
    for j in range(len(TARGETS)):
        assert relative_error(ours[j], reference[j]) <= TOLERANCE
