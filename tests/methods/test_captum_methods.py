"""Captum's DeepLift, DeepLiftShap, GradientShap, FeatureAblation, ShapleyValueSampling and layer
attributions over gRPC, equal to Captum 0.9 within 1e-4 of the map's maximum on the demo CNN, resnet18
and densenet121 (in-place ReLUs, concatenation, a functional ReLU); the passes they share; the
layers DeepLift refuses; every new parameter's range.

DeepLift's references run on `captum_deep_lift_network` (deep_lift_references.py: the same function,
spelt so that Captum's hooks apply the rule it means to) one image at a time (Captum's max-pool rule
takes the batch's first row where |Δx| is tiny). Sampling methods are compared at the same seeds: the
server draws what Captum draws after `torch.manual_seed` / `numpy.random.seed`.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import (
    DeepLift,
    DeepLiftShap,
    FeatureAblation,
    GradientShap,
    LayerConductance,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    ShapleyValueSampling,
)
from glassbox.common.hooks import CallHooks
from glassbox.common.rescale import RescaleRules
from glassbox.core.errors import FailedPrecondition
from glassbox.methods.deep_lift_shap import shap_baselines
from glassbox.methods.smoothgrad import sample_noise
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc, model_service_pb2_grpc
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as model_pb
from support.deep_lift_references import captum_deep_lift_network
from support.gradient_harness import (
    CAM_LAYERS,
    IMAGES,
    TARGETS,
    TOLERANCE,
    attribute,
    maps,
    reference_network,
    relative_error,
    request,
    tensor,
)
from support.servers import RunningServer

Stub = attribution_service_pb2_grpc.AttributionServiceStub


_networks: dict[tuple[str, bool], torch.nn.Module] = {}


def network(repository: Path, name: str, *, folded: bool = True) -> torch.nn.Module:
    """The served network for the references (BatchNorm folded, as the gradient methods run it)."""
    if (name, folded) not in _networks:
        _networks[name, folded] = reference_network(repository, name, input_gradients=folded)
    return _networks[name, folded]


@pytest.mark.parametrize("model", ["shapes", "resnet", "densenet"])
def test_deep_lift_equals_captum(stub: Stub, repository: Path, model: str) -> None:
    response = attribute(stub, request(model, deep_lift=pb.DeepLiftParams()))
    ours = maps(response)
    reference = captum_deep_lift_network(reference_network(repository, model, input_gradients=True))
    for j, target in enumerate(TARGETS):
        for i in range(IMAGES.shape[0]):
            expected = DeepLift(reference).attribute(IMAGES[i : i + 1], IMAGES[i : i + 1] * 0, target=target)
            assert relative_error(ours[j, i], expected[0]) <= TOLERANCE
    # one paired forward (image and baseline rows) and one backward per target: no other pass
    assert response.stats.forward_passes == 2 * IMAGES.shape[0]
    assert response.stats.backward_passes == len(TARGETS) * IMAGES.shape[0]


def test_deep_lift_adds_up_to_the_score_difference(stub: Stub, repository: Path) -> None:
    """On the demo CNN (non-overlapping max-pooling: Captum's rule then keeps every contribution)."""
    response = attribute(stub, request("shapes", deep_lift=pb.DeepLiftParams(baseline=pb.BASELINE_WHITE)))
    with torch.no_grad():
        net = network(repository, "shapes")
        difference = net(IMAGES) - net(torch.ones_like(IMAGES))
    sums = maps(response).sum(axis=(2, 3, 4))
    for j, target in enumerate(TARGETS):
        assert np.allclose(sums[j], difference[:, target].numpy(), atol=1e-4, rtol=1e-4)


def test_deep_lift_shap_equals_captum(stub: Stub, repository: Path) -> None:
    ours = maps(attribute(stub, request("resnet", deep_lift_shap=pb.DeepLiftShapParams(baselines=3, seed=2))))
    reference = captum_deep_lift_network(reference_network(repository, "resnet", input_gradients=True))
    backgrounds = shap_baselines(2, 3, (3, 64, 64))
    for j, target in enumerate(TARGETS):
        for i in range(IMAGES.shape[0]):
            expected = DeepLiftShap(reference).attribute(IMAGES[i : i + 1], backgrounds, target=target)
            assert relative_error(ours[j, i], expected[0]) <= TOLERANCE


@pytest.mark.parametrize("model", ["shapes", "resnet"])
def test_gradient_shap_equals_captum_at_the_same_seed(stub: Stub, repository: Path, model: str) -> None:
    params = pb.GradientShapParams(samples=6, stdev=0.1, baselines=3, seed=7)
    ours = maps(attribute(stub, request(model, gradient_shap=params)))
    backgrounds = shap_baselines(7, 3, (3, 64, 64))
    net = network(repository, model)  # before seeding: building a network draws initial weights
    for j, target in enumerate(TARGETS):
        for i in range(IMAGES.shape[0]):
            torch.manual_seed(7)
            np.random.seed(7)
            expected = GradientShap(net).attribute(
                IMAGES[i : i + 1], backgrounds, n_samples=6, stdevs=0.1, target=target
            )
            assert relative_error(ours[j, i], expected[0]) <= TOLERANCE


def test_smoothgrad_of_deep_lift_averages_deep_lift_on_the_noisy_inputs(stub: Stub, repository: Path) -> None:
    params = pb.SmoothGradParams(samples=2, noise_fraction=0.1, seed=3, deep_lift=pb.DeepLiftParams())
    ours = maps(attribute(stub, request("shapes", IMAGES[:1], smoothgrad=params)))
    reference = captum_deep_lift_network(reference_network(repository, "shapes", input_gradients=True))
    for j, target in enumerate(TARGETS):
        noisy = [IMAGES[0] + sample_noise(3, s, IMAGES.shape[1:], 0.1) for s in range(2)]
        expected = (
            sum(DeepLift(reference).attribute(x[None], x[None] * 0, target=target)[0] for x in noisy) / 2
        )
        assert relative_error(ours[j, 0], expected) <= TOLERANCE


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("shapes", pb.FeatureAblationParams(superpixels=16, baseline_value=0.3)),
        ("resnet", pb.FeatureAblationParams(superpixels=12, grid=True)),
        ("shapes", pb.ShapleyValueSamplingParams(samples=3, superpixels=12, baseline_value=0.3, seed=4)),
    ],
    ids=["ablation-slic", "ablation-grid", "shapley"],
)
def test_feature_groups_equal_captum_on_the_same_mask(
    stub: Stub, repository: Path, model: str, params: object
) -> None:
    name = "feature_ablation" if isinstance(params, pb.FeatureAblationParams) else "shapley_value_sampling"
    response = attribute(stub, request(model, aggregation=pb.AGGREGATION_SUM, **{name: params}))
    net = network(repository, model, folded=False)
    for i, image in enumerate(response.images):
        for target, attribution in zip(TARGETS, image.attributions, strict=True):
            mask = torch.from_numpy(tensor(attribution.segments).copy())[None, None]
            if name == "feature_ablation":
                expected = FeatureAblation(net).attribute(
                    IMAGES[i : i + 1],
                    baselines=params.baseline_value or 0.5,
                    target=target,
                    feature_mask=mask,
                )
            else:
                torch.manual_seed(4)
                expected = ShapleyValueSampling(net).attribute(
                    IMAGES[i : i + 1], baselines=0.3, target=target, feature_mask=mask, n_samples=3
                )
            assert relative_error(tensor(attribution.map), expected[0, 0]) <= TOLERANCE
            if params.grid:  # (SLIC falls back to a grid on some demo images: either is right without it)
                assert attribution.segmentation == pb.SEGMENTATION_GRID
    groups = int(tensor(response.images[0].attributions[0].segments).max()) + 1
    if name == "feature_ablation":  # one pass per group and the image's own, shared by both targets
        assert response.stats.forward_passes <= IMAGES.shape[0] * (1 + max(groups, 16))


LAYER_CASES = [
    ("shapes", "layer_gradient_x_activation"),
    ("resnet", "layer_gradient_x_activation"),
    ("densenet", "layer_gradient_x_activation"),
    ("shapes", "layer_conductance"),
    ("resnet", "layer_conductance"),
    ("shapes", "layer_integrated_gradients"),
    ("resnet", "layer_integrated_gradients"),
    ("densenet", "layer_integrated_gradients"),
]


@pytest.mark.parametrize(("model", "method"), LAYER_CASES, ids=[f"{m}-{n}" for m, n in LAYER_CASES])
def test_layer_attributions_equal_captum_at_the_layer(
    stub: Stub, repository: Path, model: str, method: str
) -> None:
    layer_name = CAM_LAYERS[model]
    params = {
        "layer_gradient_x_activation": pb.LayerGradientXActivationParams(layer=layer_name),
        "layer_conductance": pb.LayerConductanceParams(layer=layer_name, steps=6),
        "layer_integrated_gradients": pb.LayerIntegratedGradientsParams(layer=layer_name, steps=6),
    }[method]
    response = attribute(stub, request(model, aggregation=pb.AGGREGATION_SUM, **{method: params}))
    ours, pictures = maps(response, "layer_map"), maps(response)
    net = network(repository, model)
    layer = net.net.get_submodule(layer_name)
    black = torch.zeros_like(IMAGES)
    for j, target in enumerate(TARGETS):
        if method == "layer_gradient_x_activation":
            expected = LayerGradientXActivation(net, layer).attribute(IMAGES, target=target)
        elif method == "layer_conductance":
            expected = LayerConductance(net, layer).attribute(IMAGES, black, target=target, n_steps=6)
        else:
            expected = LayerIntegratedGradients(net, layer).attribute(IMAGES, black, target=target, n_steps=6)
        summed = expected.sum(dim=1)
        assert ours.shape[2:] == tuple(summed.shape[1:])  # the layer's resolution
        assert relative_error(ours[j], summed) <= TOLERANCE
        upsampled = F.interpolate(summed[:, None], size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
        assert relative_error(pictures[j], upsampled) <= TOLERANCE
    if method == "layer_integrated_gradients":
        deltas = [a.convergence_delta for image in response.images for a in image.attributions]
        assert all(np.isfinite(deltas)) and all(
            a.HasField("convergence_delta") for im in response.images for a in im.attributions
        )


def test_rescale_methods_are_refused_on_layers_the_rule_does_not_define(
    stub: Stub, shared_server: RunningServer
) -> None:
    models = model_service_pb2_grpc.ModelServiceStub(shared_server.channel)
    listed = models.GetModel(model_pb.GetModelRequest(model="vit"), timeout=30).model.supported_methods
    assert "deep_lift" not in listed and "gradient_shap" in listed and "feature_ablation" in listed
    for method, params in [("deep_lift", pb.DeepLiftParams()), ("deep_lift_shap", pb.DeepLiftShapParams())]:
        with pytest.raises(grpc.RpcError) as error:
            attribute(stub, request("vit", IMAGES[:1], **{method: params}))
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "LayerNorm" in error.value.details() and "'encoder.layers" in error.value.details()


def test_functional_nonlinearities_are_refused_naming_the_layer() -> None:
    """A GELU called functionally inside a module is seen at run time (no module of that type exists)."""

    class Block(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.gelu(x)

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), Block())
    with (
        CallHooks() as hooks,
        pytest.raises(FailedPrecondition, match=r"gelu in layer '1'"),
        torch.enable_grad(),
        RescaleRules(hooks, net, "deep_lift"),
    ):
        net(torch.rand(2, 3, 4, 4, requires_grad=True))
    gate = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1))
    with (
        CallHooks() as hooks,
        pytest.raises(FailedPrecondition, match="mul of two activations"),
        torch.enable_grad(),
        RescaleRules(hooks, gate, "deep_lift"),
    ):
        y = gate(torch.rand(2, 3, 4, 4, requires_grad=True))
        y * torch.sigmoid(y)


BAD = [
    ("deep_lift", pb.DeepLiftParams(baseline=pb.BASELINE_BLURRED, blur_sigma=-1), "deep_lift.blur_sigma"),
    ("deep_lift", pb.DeepLiftParams(baseline=pb.BASELINE_IMAGE), "deep_lift.baseline_image"),
    ("deep_lift_shap", pb.DeepLiftShapParams(baselines=0), "deep_lift_shap.baselines"),
    ("deep_lift_shap", pb.DeepLiftShapParams(baselines=65), "deep_lift_shap.baselines"),
    ("gradient_shap", pb.GradientShapParams(samples=0), "gradient_shap.samples"),
    ("gradient_shap", pb.GradientShapParams(stdev=1.5), "gradient_shap.stdev"),
    ("gradient_shap", pb.GradientShapParams(baselines=65), "gradient_shap.baselines"),
    ("gradient_shap", pb.GradientShapParams(seed=2**32), "gradient_shap.seed"),
    ("feature_ablation", pb.FeatureAblationParams(superpixels=1), "feature_ablation.superpixels"),
    ("feature_ablation", pb.FeatureAblationParams(baseline_value=2), "feature_ablation.baseline_value"),
    ("shapley_value_sampling", pb.ShapleyValueSamplingParams(samples=0), "shapley_value_sampling.samples"),
    (
        "shapley_value_sampling",
        pb.ShapleyValueSamplingParams(samples=1000, superpixels=1000),
        "shapley_value_sampling.samples",
    ),
    (
        "shapley_value_sampling",
        pb.ShapleyValueSamplingParams(superpixels=2000),
        "shapley_value_sampling.superpixels",
    ),
    ("layer_conductance", pb.LayerConductanceParams(steps=0), "layer_conductance.steps"),
    ("layer_conductance", pb.LayerConductanceParams(layer="nope"), "layer_conductance.layer"),
    (
        "layer_integrated_gradients",
        pb.LayerIntegratedGradientsParams(steps=0),
        "layer_integrated_gradients.steps",
    ),
    (
        "layer_integrated_gradients",
        pb.LayerIntegratedGradientsParams(baseline=pb.BASELINE_UNIFORM_NOISE, seed=2**64 - 1, steps=100000),
        "layer_integrated_gradients.steps",
    ),
    (
        "layer_gradient_x_activation",
        pb.LayerGradientXActivationParams(layer="fc"),
        "layer_gradient_x_activation.layer",
    ),
]


@pytest.mark.parametrize(("method", "params", "field"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_parameters_are_refused_naming_the_field(
    stub: Stub, method: str, params: object, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request("resnet", IMAGES[:1], **{method: params}))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.value.details() or field in str(error.value.trailing_metadata())
