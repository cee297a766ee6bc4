"""LRP over gRPC equals Zennit 1.0 (EpsilonPlusFlat, EpsilonGammaBox, EpsilonAlpha2Beta1 and a uniform
composite) on the demo CNN, torchvision resnet18 (BatchNorm merged, residual sums), vgg11 and densenet121
(concatenations, BatchNorm after a concatenation, functional ReLU and pooling), and Captum's LRP with the
`captum` composite; inside SmoothGrad it is the mean of the noisy samples' LRP maps; a network with
layers LRP has no rule for is refused naming the layer, and bad parameters name their field."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from glassbox.methods.lrp_canonize import canonize
from glassbox.methods.smoothgrad import sample_noise
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc, model_service_pb2_grpc
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as model_pb
from support.gradient_harness import IMAGES, TARGETS, TOLERANCE, attribute, maps, relative_error, request
from support.lrp_references import Reference, noisy
from support.servers import RunningServer

IMAGES_USED = IMAGES[:2]
COMPOSITES = {
    "epsilon_plus_flat": pb.LrpParams(composite=pb.LRP_COMPOSITE_EPSILON_PLUS_FLAT),
    "epsilon_gamma_box": pb.LrpParams(composite=pb.LRP_COMPOSITE_EPSILON_GAMMA_BOX),
    "epsilon_alpha2_beta1": pb.LrpParams(composite=pb.LRP_COMPOSITE_EPSILON_ALPHA2_BETA1),
    "gamma_box": pb.LrpParams(
        composite=pb.LRP_COMPOSITE_UNIFORM, rule=pb.LRP_RULE_GAMMA, first_rule=pb.LRP_RULE_Z_BOX, gamma=0.5
    ),
    "epsilon": pb.LrpParams(composite=pb.LRP_COMPOSITE_UNIFORM, epsilon=0.01),
}
CASES = [
    *[("shapes", c) for c in COMPOSITES],
    *[("resnet", c) for c in ("epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1")],
    *[("vgg", c) for c in ("epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1")],
    ("densenet", "epsilon_gamma_box"),
]


@pytest.fixture(scope="module")
def references(repository: Path) -> dict[str, Reference]:
    return {}


def reference(references: dict[str, Reference], repository: Path, model: str) -> Reference:
    if model not in references:
        references[model] = Reference(repository, model, IMAGES_USED)
    return references[model]


@pytest.mark.parametrize(("model", "composite"), CASES)
def test_equals_zennit(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
    repository: Path,
    references: dict[str, Reference],
    model: str,
    composite: str,
) -> None:
    ours = maps(attribute(stub, request(model, IMAGES_USED, lrp=COMPOSITES[composite])))
    ref = reference(references, repository, model)
    for j, target in enumerate(TARGETS):
        expected = ref.zennit(composite, target)
        assert relative_error(ours[j], expected) <= TOLERANCE, (model, composite, target)
    if composite == "epsilon_plus_flat":  # not a gradient in disguise: the rules changed the map
        gradient = maps(
            attribute(stub, request(model, IMAGES_USED, gradient_x_input=pb.GradientXInputParams()))
        )
        assert relative_error(gradient[0], ref.zennit(composite, TARGETS[0])) > 0.1


@pytest.mark.parametrize("model", ["shapes", "vgg"])
def test_captum_composite_equals_captum_lrp(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
    repository: Path,
    references: dict[str, Reference],
    model: str,
) -> None:
    params = pb.LrpParams(composite=pb.LRP_COMPOSITE_CAPTUM)
    ours = maps(attribute(stub, request(model, IMAGES_USED, lrp=params)))
    ref = reference(references, repository, model)
    for j, target in enumerate(TARGETS):
        assert relative_error(ours[j], ref.captum(target)) <= TOLERANCE


def test_inside_smoothgrad_it_is_the_mean_of_the_noisy_maps(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
    repository: Path,
    references: dict[str, Reference],
) -> None:
    samples, sigma = 2, 0.1
    params = pb.SmoothGradParams(
        samples=samples, noise_fraction=sigma, seed=3, lrp=COMPOSITES["epsilon_plus_flat"]
    )
    ours = maps(attribute(stub, request("shapes", IMAGES_USED, smoothgrad=params)))
    ref = reference(references, repository, "shapes")
    inputs = noisy(ref, lambda s: sample_noise(3, s, IMAGES_USED.shape[1:], sigma), samples)
    for j, target in enumerate(TARGETS):
        expected = torch.stack([ref.zennit("epsilon_plus_flat", target, x) for x in inputs]).mean(0)
        assert relative_error(ours[j], expected) <= TOLERANCE


def test_listed_where_it_works_and_refused_naming_the_layer(
    shared_server: RunningServer, stub: attribution_service_pb2_grpc.AttributionServiceStub
) -> None:
    models = model_service_pb2_grpc.ModelServiceStub(shared_server.channel)
    listed = {
        name: "lrp"
        in models.GetModel(model_pb.GetModelRequest(model=name), timeout=30).model.supported_methods
        for name in ("shapes", "resnet", "vgg", "densenet", "vit")
    }
    assert listed == {"shapes": True, "resnet": True, "vgg": True, "densenet": True, "vit": False}
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request("vit", IMAGES_USED, lrp=pb.LrpParams()))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = error.value.details()
    assert "no rule for" in details and "LayerNorm" in details and "saliency" in details, details
    assert "LRP here supports Conv2d" in details


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"epsilon": -1.0}, "lrp.epsilon"),
        ({"epsilon": float("nan")}, "lrp.epsilon"),
        ({"gamma": -0.5}, "lrp.gamma"),
        ({"alpha": 3.0, "beta": 1.0}, "lrp.beta"),
        ({"alpha": 0.5, "beta": 0.0}, "lrp.alpha"),
        ({"stabilizer": 0.0}, "lrp.stabilizer"),
        ({"rule": pb.LRP_RULE_GAMMA}, "lrp.rule"),
        ({"composite": pb.LRP_COMPOSITE_UNIFORM, "rule": pb.LRP_RULE_Z_BOX}, "lrp.rule"),
        ({"first_rule": pb.LRP_RULE_FLAT}, "lrp.first_rule"),
        ({"composite": 99}, "lrp.composite"),
    ],
)
def test_bad_parameters_name_their_field(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request("shapes", IMAGES_USED, lrp=pb.LrpParams(**fields)))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(field), error.value.details()


def test_every_target_shares_one_forward(stub: attribution_service_pb2_grpc.AttributionServiceStub) -> None:
    response = attribute(stub, request("resnet", IMAGES_USED, lrp=pb.LrpParams()))
    assert response.stats.forward_passes == len(IMAGES_USED)
    assert response.stats.backward_passes == len(IMAGES_USED) * len(TARGETS)
    assert np.isfinite(maps(response)).all()


def test_only_inputs_downstream_of_a_relu_are_taken_as_non_negative() -> None:
    """The rules skip the negative-input terms of layers the canonical graph marks (methods/lrp_linear.py):
    a mark on a layer whose input can be negative would silently drop relevance."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 4, 3),
        torch.nn.Conv2d(4, 4, 3),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 2),
    ).eval()
    _, layers = canonize(net, merge_batchnorm=True)
    marks = [layer.linear.input_nonnegative for layer in layers if layer.linear is not None]
    assert marks == [False, True, False, False]
