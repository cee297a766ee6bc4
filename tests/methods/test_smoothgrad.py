"""SmoothGrad over gRPC: with the noise pinned (`sample_noise`, the noise the server draws), every variant
over every base method equals the same statistic of Captum's base method on the same noisy inputs. The
map depends on the seed only, not on the batch it came in; samples are batched, so a call costs one
forward per (sample, image) and one backward per (sample, image, target)."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from captum.attr import GuidedBackprop, InputXGradient, IntegratedGradients, Saliency
from glassbox.methods.smoothgrad import sample_noise
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

SAMPLES, SIGMA, SEED = 6, 0.2, 11
BASES = {
    "saliency": (pb.SaliencyParams(), lambda net: Saliency(net), {"abs": False}),
    "gradient_x_input": (pb.GradientXInputParams(), InputXGradient, {}),
    "guided_backprop": (pb.GuidedBackpropParams(), GuidedBackprop, {}),
    "integrated_gradients": (pb.IntegratedGradientsParams(steps=4), IntegratedGradients, {"n_steps": 4}),
}
VARIANTS = [
    pb.SMOOTH_GRAD_VARIANT_SMOOTHGRAD,
    pb.SMOOTH_GRAD_VARIANT_SMOOTHGRAD_SQUARED,
    pb.SMOOTH_GRAD_VARIANT_VARGRAD,
]


@pytest.fixture(scope="module")
def network(repository: Path) -> torch.nn.Module:
    return reference_network(repository, "shapes", input_gradients=True)


def smoothgrad(
    base: str, variant: int = pb.SMOOTH_GRAD_VARIANT_SMOOTHGRAD, **fields: object
) -> pb.SmoothGradParams:
    params = pb.SmoothGradParams(samples=SAMPLES, noise_fraction=SIGMA, seed=SEED, variant=variant, **fields)
    getattr(params, base).CopyFrom(BASES[base][0])
    return params


def reference(network: torch.nn.Module, base: str, variant: int, target: int) -> torch.Tensor:
    _, method, options = BASES[base]
    samples = torch.stack(
        [
            method(network).attribute(
                IMAGES + sample_noise(SEED, s, IMAGES.shape[1:], SIGMA), target=target, **options
            )
            for s in range(SAMPLES)
        ]
    ).double()
    if variant == pb.SMOOTH_GRAD_VARIANT_SMOOTHGRAD:
        return samples.mean(dim=0)
    if variant == pb.SMOOTH_GRAD_VARIANT_SMOOTHGRAD_SQUARED:
        return samples.square().mean(dim=0)
    return samples.var(dim=0, unbiased=False)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("base", list(BASES))
def test_each_variant_of_each_base_equals_captum_on_the_same_noise(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
    network: torch.nn.Module,
    base: str,
    variant: int,
) -> None:
    ours = maps(attribute(stub, request("shapes", smoothgrad=smoothgrad(base, variant))))
    for j, target in enumerate(TARGETS):
        assert relative_error(ours[j], reference(network, base, variant, target).float()) <= TOLERANCE


def test_passes_are_counted_per_sample(stub: attribution_service_pb2_grpc.AttributionServiceStub) -> None:
    response = attribute(stub, request("shapes", smoothgrad=smoothgrad("saliency")))
    # one forward of the clean images for the scores, then SAMPLES noisy copies of each image
    assert response.stats.forward_passes == 3 + 3 * SAMPLES
    assert response.stats.backward_passes == 3 * SAMPLES * len(TARGETS)


def test_a_map_depends_on_the_seed_not_on_the_batch(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
) -> None:
    batch = maps(attribute(stub, request("shapes", smoothgrad=smoothgrad("saliency"))))
    alone = maps(attribute(stub, request("shapes", IMAGES[1:2], smoothgrad=smoothgrad("saliency"))))
    assert np.abs(alone[:, 0] - batch[:, 1]).max() <= 1e-6 * np.abs(batch).max()
    params = smoothgrad("saliency")
    params.seed = SEED + 1
    other = maps(attribute(stub, request("shapes", smoothgrad=params)))
    assert relative_error(other, batch) > 0.01


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"samples": 0}, "smoothgrad.samples"),
        ({"samples": 5000}, "smoothgrad.samples"),
        ({"noise_fraction": -0.1}, "smoothgrad.noise_fraction"),
        ({"noise_fraction": 1.5}, "smoothgrad.noise_fraction"),
    ],
)
def test_bad_parameters_name_their_field(
    stub: attribution_service_pb2_grpc.AttributionServiceStub, fields: dict[str, float], field: str
) -> None:
    params = smoothgrad("saliency")
    for name, value in fields.items():
        setattr(params, name, value)
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request("shapes", smoothgrad=params))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(field)
    if field == "smoothgrad.samples" and fields["samples"]:
        assert "max_samples" in error.value.details()


def test_base_parameters_are_checked_with_their_path(
    stub: attribution_service_pb2_grpc.AttributionServiceStub,
) -> None:
    params = smoothgrad("integrated_gradients")
    params.integrated_gradients.steps = 0
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request("shapes", smoothgrad=params))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("smoothgrad.integrated_gradients.steps")
