"""Integrated gradients over gRPC equal Captum's `IntegratedGradients` for every rule and baseline, with
Captum's convergence delta; every (image, step) row and every target share the forward passes."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc
from support.gradient_harness import (
    IMAGES,
    TARGETS,
    TOLERANCE,
    attribute,
    image_message,
    maps,
    reference_network,
    relative_error,
    request,
)
from torchvision.transforms.functional import gaussian_blur

STEPS = 12
CAPTUM_RULES = {
    pb.INTEGRATION_RULE_GAUSS_LEGENDRE: "gausslegendre",
    pb.INTEGRATION_RULE_RIEMANN_LEFT: "riemann_left",
    pb.INTEGRATION_RULE_RIEMANN_RIGHT: "riemann_right",
    pb.INTEGRATION_RULE_RIEMANN_MIDDLE: "riemann_middle",
}


@pytest.fixture(scope="module")
def shapes(repository: Path) -> torch.nn.Module:
    return reference_network(repository, "shapes", input_gradients=True)


def deltas(response: pb.AttributeResponse) -> np.ndarray:
    return np.array([[a.convergence_delta for a in image.attributions] for image in response.images]).T


NOISE = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(9)).expand(3, 3, 64, 64).contiguous()
"""The uniform-noise baseline of seed 9. The rule tests use it rather than black: at a constant image
every max-pool window is a tie, so the gradient at α = 0 (left and trapezoid rules) would depend on
float rounding, not on the method."""


@pytest.mark.parametrize("rule", list(CAPTUM_RULES))
def test_every_rule_equals_captum_with_its_convergence_delta(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, shapes: torch.nn.Module, rule: int
) -> None:
    params = pb.IntegratedGradientsParams(steps=STEPS, rule=rule, baseline=pb.BASELINE_UNIFORM_NOISE, seed=9)
    response = attribute(stub, request("shapes", integrated_gradients=params))
    ours = maps(response)
    for j, target in enumerate(TARGETS):
        reference, delta = IntegratedGradients(shapes).attribute(
            IMAGES,
            NOISE,
            target=target,
            n_steps=STEPS,
            method=CAPTUM_RULES[rule],
            return_convergence_delta=True,
        )
        assert relative_error(ours[j], reference) <= TOLERANCE
        assert np.allclose(deltas(response)[j], delta.numpy(), atol=1e-4)
    # 3 images × 12 steps with graph, plus the images and their baselines for the scores and deltas
    assert response.stats.forward_passes == 3 * STEPS + 6
    assert response.stats.backward_passes == 3 * STEPS * len(TARGETS)


def test_trapezoid_rule_is_the_true_trapezoid(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, shapes: torch.nn.Module
) -> None:
    """Captum weighs the trapezoid's points by 1/n (halved at the ends), so its weights sum to (n − 1)/n;
    the trapezoid rule on n points spaced 1/(n − 1) apart is Captum's result times n/(n − 1), as the proto
    documents beside the convergence delta: ours is Captum's delta plus Captum's map sum / (n − 1)."""
    params = pb.IntegratedGradientsParams(
        steps=STEPS, rule=pb.INTEGRATION_RULE_RIEMANN_TRAPEZOID, baseline=pb.BASELINE_UNIFORM_NOISE, seed=9
    )
    response = attribute(stub, request("shapes", integrated_gradients=params))
    ours, our_deltas = maps(response), deltas(response)
    for j, target in enumerate(TARGETS):
        captum, captum_delta = IntegratedGradients(shapes).attribute(
            IMAGES,
            NOISE,
            target=target,
            n_steps=STEPS,
            method="riemann_trapezoid",
            return_convergence_delta=True,
        )
        assert relative_error(ours[j], captum * STEPS / (STEPS - 1)) <= TOLERANCE
        expected = captum_delta.double() + captum.double().sum(dim=(1, 2, 3)) / (STEPS - 1)
        scale = float(captum.double().sum(dim=(1, 2, 3)).abs().max())
        np.testing.assert_allclose(our_deltas[j], expected.numpy(), atol=1e-3 * scale)


def baseline_cases() -> list[tuple[str, pb.IntegratedGradientsParams, torch.Tensor]]:
    other = IMAGES[[2, 0, 1]][0]
    return [
        ("white", pb.IntegratedGradientsParams(baseline=pb.BASELINE_WHITE), torch.ones_like(IMAGES)),
        (
            "blurred",
            pb.IntegratedGradientsParams(baseline=pb.BASELINE_BLURRED, blur_sigma=2.0),
            gaussian_blur(IMAGES, [13, 13], [2.0, 2.0]),
        ),
        ("noise", pb.IntegratedGradientsParams(baseline=pb.BASELINE_UNIFORM_NOISE, seed=9), NOISE),
        (
            "image",
            pb.IntegratedGradientsParams(baseline=pb.BASELINE_IMAGE, baseline_image=image_message(other)),
            other.expand(3, 3, 64, 64),
        ),
    ]


@pytest.mark.parametrize(
    ("name", "params", "baseline"), baseline_cases(), ids=[c[0] for c in baseline_cases()]
)
def test_every_baseline_equals_captum_with_that_baseline(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
    repository: Path,
    name: str,
    params: pb.IntegratedGradientsParams,
    baseline: torch.Tensor,
) -> None:
    params.steps = 8
    ours = maps(attribute(stub, request("resnet", integrated_gradients=params)))
    network = reference_network(repository, "resnet", input_gradients=True)
    for j, target in enumerate(TARGETS):
        reference = IntegratedGradients(network).attribute(
            IMAGES, baselines=baseline.contiguous(), target=target, n_steps=8, method="gausslegendre"
        )
        assert relative_error(ours[j], reference) <= TOLERANCE


def test_completeness_holds_with_enough_steps(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
) -> None:
    response = attribute(stub, request("shapes", integrated_gradients=pb.IntegratedGradientsParams(steps=64)))
    logits = [abs(a.target.logit) for image in response.images for a in image.attributions]
    assert np.abs(deltas(response)).max() < 1e-2 * max(logits)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (pb.IntegratedGradientsParams(steps=0), "integrated_gradients.steps"),
        (pb.IntegratedGradientsParams(steps=100_000), "integrated_gradients.steps"),
        (
            pb.IntegratedGradientsParams(steps=1, rule=pb.INTEGRATION_RULE_RIEMANN_TRAPEZOID),
            "integrated_gradients.steps",
        ),
        (
            pb.IntegratedGradientsParams(baseline=pb.BASELINE_BLURRED, blur_sigma=-1),
            "integrated_gradients.blur_sigma",
        ),
        (pb.IntegratedGradientsParams(baseline=pb.BASELINE_IMAGE), "integrated_gradients.baseline_image"),
    ],
)
def test_bad_parameters_name_their_field(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
    params: pb.IntegratedGradientsParams,
    field: str,
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request("shapes", integrated_gradients=params))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(field)
