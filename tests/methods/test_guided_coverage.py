"""Guided ReLU rules on mixed networks: the rules change nn.ReLU modules only, so a guided map says in
the response which activations it modified and which kept their true gradient (mobilenet_v3_small: ReLU
and Hardswish modules), and a network that runs no nn.ReLU module (efficientnet_b0: SiLU; a network with
functional ReLUs only) refuses every guided method, SmoothGrad's guided bases included, with
FAILED_PRECONDITION naming its activation types, while GetModel lists only what it serves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop
from glassbox.backends.activations import activation_sites
from glassbox.backends.torch_backend import TorchModel
from glassbox.core.images import InputSpec
from glassbox.core.model_config import ModelConfig, ModelFormat
from glassbox.methods.gradients import relu_rule_unsupported
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc, model_service_pb2_grpc
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as model_pb
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
from support.servers import RunningServer
from torch import nn

GUIDED = ("guided_backprop", "deconvnet", "guided_grad_cam")


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("guided-coverage-models")
    for name, architecture in [("mobilenet", "mobilenet_v3_small"), ("efficientnet", "efficientnet_b0")]:
        # exact mode: the reference below is the user's own network
        write_calibrated_version(root, name, architecture, explain='[explain]\nmode = "exact"\n')
    return root


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer], repository: Path) -> RunningServer:
    return start_server(model_repository=repository, cache={"enabled": False})


@pytest.fixture(scope="module")
def stub(server: RunningServer) -> attribution_service_pb2_grpc.AttributionServiceStub:
    return attribution_service_pb2_grpc.AttributionServiceStub(server.channel)


def test_a_guided_map_on_a_mixed_network_says_which_activations_it_modified(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, repository: Path
) -> None:
    response = attribute(stub, request("mobilenet", guided_backprop=pb.GuidedBackpropParams()))
    network = user_network(repository, "mobilenet", "mobilenet_v3_small")
    relus = [name for name, m in network.net.named_modules() if isinstance(m, nn.ReLU)]
    hardswish = [name for name, m in network.net.named_modules() if isinstance(m, nn.Hardswish)]
    coverage = response.relu_rule
    assert sorted(coverage.modified) == sorted(relus)
    assert {f"{name} (Hardswish)" for name in hardswish} <= set(coverage.unmodified)
    assert all(" (ReLU)" not in entry for entry in coverage.unmodified)
    ours = maps(response)
    for j, target in enumerate(TARGETS):  # Captum's guided rule changes the same ReLU modules
        reference = GuidedBackprop(network).attribute(IMAGES.clone(), target=target)
        assert relative_error(ours[j], reference) <= TOLERANCE
    smoothed = pb.SmoothGradParams(samples=2, guided_backprop=pb.GuidedBackpropParams())
    assert attribute(stub, request("mobilenet", smoothgrad=smoothed)).relu_rule == coverage
    plain = attribute(stub, request("mobilenet", saliency=pb.SaliencyParams()))
    assert not plain.HasField("relu_rule")


def test_a_relu_free_network_lists_and_refuses_guided_methods_alike(
    server: RunningServer, stub: attribution_service_pb2_grpc.AttributionServiceStub
) -> None:
    models = model_service_pb2_grpc.ModelServiceStub(server.channel)
    listed = models.GetModel(
        model_pb.GetModelRequest(model="efficientnet"), timeout=30
    ).model.supported_methods
    assert not set(GUIDED) & set(listed) and "smoothgrad" in listed
    for method, params in [
        ("guided_backprop", pb.GuidedBackpropParams()),
        ("deconvnet", pb.DeconvnetParams()),
    ]:
        with pytest.raises(grpc.RpcError) as error:
            attribute(stub, request("efficientnet", **{method: params}))
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "SiLU" in error.value.details()
    base = pb.SmoothGradParams(samples=2, guided_backprop=pb.GuidedBackpropParams())
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request("efficientnet", smoothgrad=base))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = error.value.details()
    assert details.startswith("smoothgrad.guided_backprop") and "SiLU" in details and "'saliency'" in details
    neuron = pb.NeuronGradientParams(layer="features.1", scope=pb.NEURON_SCOPE_LAYER, guided=True)
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request("efficientnet", targets=None, neuron_gradient=neuron))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "SiLU" in error.value.details()


class FunctionalRelus(nn.Module):
    """ReLUs called as functions only: a guided rule on nn.ReLU modules would change nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.conv(x)).mean(dim=(2, 3)))


def test_functional_relus_alone_are_refused_not_served_as_plain_gradients() -> None:
    config = ModelConfig(ModelFormat.SAFETENSORS, "w", ("a",) * 6, InputSpec(16, 16), (0,) * 3, (1,) * 3)
    model = TorchModel("f", "1", config, "d", FunctionalRelus(), torch.device("cpu"))
    assert [(s.name, s.kind, s.guided) for s in activation_sites(FunctionalRelus())] == [
        ("relu", "F.relu", False)
    ]
    reason = relu_rule_unsupported("guided_backprop", model)
    assert reason is not None and "F.relu" in reason and "plain gradient" in reason
