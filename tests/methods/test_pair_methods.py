"""XRAI, guided integrated gradients and blur integrated gradients over gRPC equal the `saliency`
package 0.2.1 (PAIR's reference implementation) within 1e-4 of the map's maximum, on the demo CNN, a
torchvision resnet18 and densenet121 (in-place ReLUs, concatenation). The package calls a
`call_model_function` around the served network (its BatchNorm-folded input-gradient form, the one the
gradient methods run on); images go to it channels-last as it expects. Guided and blur integrated
gradients also serve as SmoothGrad bases (checked against the package on the server's noise), and
every parameter is range-checked with its field named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
import saliency.core as saliency
import torch
from glassbox.methods.smoothgrad import sample_noise
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc
from support.gradient_harness import (
    IMAGES,
    TARGETS,
    TOLERANCE,
    attribute,
    maps,
    relative_error,
    request,
)
from support.gradient_harness import write_repository as write_models
from support.servers import RunningServer

MODELS = ("shapes", "resnet", "densenet")
GUIDED_STEPS, BLUR_STEPS, XRAI_STEPS = 12, 10, 10
# XRAI_STEPS = 10 with the package's batch_size 10: its gradient batches are then the server's chunks
# on a CPU (10 rows: one baseline's steps), so both sides round alike. On densenet121 a different
# batch composition alone moves the map by ~1e-4 of its maximum (float32 rounding flips ReLUs near zero).


# ROW_BY_ROW: on densenet121 a gradient batch's composition alone moves Blur IG's map by up to 1.8e-4
# of its maximum (float32 rounding flips ReLUs near zero; how far depends on the CPU's kernels). Its
# server computes one row per gradient batch (a one-byte memory budget), as the package does with
# batch_size 1, so both round alike.
ROW_BY_ROW = {"densenet": {"attribution": {"memory_budget_bytes": 1}}}


def package_batch(model: str, rows: int) -> int:
    """The package's batch size that matches the server's gradient batches of `rows` rows."""
    return 1 if model in ROW_BY_ROW else rows


@dataclass
class Served:
    """A server's stub (the shared one, or the model's own where it computes row by row) and the served
    network for the reference, taken from that server instead of loading the model again."""

    stub: attribution_service_pb2_grpc.AttributionServiceStub
    network: torch.nn.Module


@pytest.fixture(scope="module")
def served(
    shared_server: RunningServer,
    start_server: Callable[..., RunningServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], Served]:
    cache: dict[str, Served] = {}

    def get(model: str) -> Served:
        if model not in cache:
            if model in ROW_BY_ROW:
                root = write_models(tmp_path_factory.mktemp(f"pair-{model}"), (model,))
                server = start_server(model_repository=root, cache={"enabled": False}, **ROW_BY_ROW[model])
            else:
                server = shared_server
            network = copy.deepcopy(server.server.context.repository.get(model).input_gradient_network())
            for module in network.modules():
                if isinstance(module, torch.nn.ReLU):
                    module.inplace = False
            stub = attribution_service_pb2_grpc.AttributionServiceStub(server.channel)
            cache[model] = Served(stub, network.requires_grad_(True).eval())
        return cache[model]

    return get


@pytest.fixture(scope="module")
def shapes(served: Callable[[str], Served]) -> Served:
    return served("shapes")


@pytest.fixture(autouse=True)
def numpy_quantile_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    """saliency 0.2.1's guided IG calls np.quantile(..., interpolation='lower'); NumPy 2 renamed the
    keyword to `method` (same meaning) and removed the old name, so the package's call is translated."""
    quantile = np.quantile

    def translated(*args: object, interpolation: str | None = None, **kwargs: object) -> object:
        if interpolation is not None:
            kwargs["method"] = interpolation
        return quantile(*args, **kwargs)

    monkeypatch.setattr(np, "quantile", translated)


def call_model_function(
    network: torch.nn.Module, dtype: type = np.float32
) -> Callable[..., dict[str, np.ndarray]]:
    """The package's model interface: input gradients of the target's score, batch channels-last."""

    def call(batch: np.ndarray, call_model_args: dict[str, int], expected_keys: list[str]) -> dict:
        assert expected_keys == [saliency.base.INPUT_OUTPUT_GRADIENTS]
        x = torch.from_numpy(np.asarray(batch, dtype=dtype)).permute(0, 3, 1, 2).requires_grad_(True)
        network(x)[:, call_model_args["target"]].sum().backward()
        return {saliency.base.INPUT_OUTPUT_GRADIENTS: x.grad.permute(0, 2, 3, 1).numpy()}

    return call


def channels_last(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).numpy()


# BLUR_REFERENCE_IN_FLOAT64: the package blurs in the input's dtype. On a float32 image its finite
# difference in sigma, (blur(x, σ + 0.01) − blur(x, σ)) / 0.01, amplifies float32 rounding a hundredfold
# (3e-3 of the map's maximum on the demo CNN); given the image in float64 it computes the same
# algorithm without that loss (the network still sees float32 pixels), as the server does.


def images_for(model: str) -> torch.Tensor:
    """Two images on the demo CNN, one on the larger networks (the package runs one image at a time)."""
    return IMAGES[:2] if model == "shapes" else IMAGES[:1]


# GUIDED_IMAGES: Guided IG moves, at each step, the features whose gradient is smallest; where two
# features' gradients are nearly equal the order, and so the whole path, hinges on float32 rounding. On
# the demo CNN the package itself, run in float32 and in float64, ends 0.3–0.99 of the map's maximum
# apart on IMAGES[0] (target 1) and IMAGES[1] (both targets) at max_dist 0.02, and which way float32 goes
# there depends on the CPU's kernels (equal on one machine kind, 0.48 apart on another). The server
# computes the demo CNN's paths as batched rows, which round differently from the package's single
# rows, so there it is asked on images where the package's float32 and float64 paths agree (asserted),
# and the test compares the algorithm, not one CPU's rounding. The larger networks are asked one row at
# a time, as the package computes them, and round alike.
GUIDED_IMAGES = torch.stack([IMAGES[2], IMAGES[0].flip(-1)])


def package_is_stable(
    network: torch.nn.Module, image: torch.Tensor, target: int, reference: np.ndarray, **options: float
) -> bool:
    """Whether the package's float64 map of `image` equals its float32 `reference` within the tolerance."""
    function = call_model_function(copy.deepcopy(network).double(), dtype=np.float64)
    in_float64 = saliency.GuidedIG().GetMask(
        channels_last(image).astype(np.float64), function, {"target": target}, **options
    )
    return relative_error(reference, in_float64) <= TOLERANCE


@pytest.mark.parametrize("model", MODELS)
def test_guided_integrated_gradients_equal_the_package(served: Callable[[str], Served], model: str) -> None:
    """The path is chosen from the gradients' order, so where float32 rounding flips ReLUs it can hinge on
    it: on densenet121 the server's paths of two targets, computed as one two-row gradient batch, end
    0.32 of the map's maximum away from the package's paths computed one row at a time (at max_dist 0.1
    resnet18's class 4 moves by 0.6 in the package itself between batches of one and two rows). So the
    larger networks are asked one target at a time (one path, one row per gradient batch, as the
    package); the demo CNN, where rounding moves nothing, checks the batched paths of 2 images × 2
    targets."""
    stub, network = served(model).stub, served(model).network
    images = GUIDED_IMAGES if model == "shapes" else images_for(model)
    params = pb.GuidedIntegratedGradientsParams(steps=GUIDED_STEPS, fraction=0.25, max_dist=0.02)
    method, function = saliency.GuidedIG(), call_model_function(network)
    groups = [TARGETS] if model == "shapes" else [(target,) for target in TARGETS]
    for targets in groups:
        message = request(
            model,
            images,
            targets=targets,
            aggregation=pb.AGGREGATION_NONE,
            guided_integrated_gradients=params,
        )
        response = attribute(stub, message)
        ours = maps(response)
        for j, target in enumerate(targets):
            for i, image in enumerate(images):
                options = {"x_steps": GUIDED_STEPS, "max_dist": 0.02}
                reference = method.GetMask(channels_last(image), function, {"target": target}, **options)
                if model == "shapes":  # batched rows: the rounding differs from the package's
                    assert package_is_stable(network, image, target, reference, **options)
                assert relative_error(ours[j, i], reference.transpose(2, 0, 1)) <= TOLERANCE
        # every (image, target) pair walks its own path: one backward per step and pair
        assert response.stats.backward_passes == GUIDED_STEPS * len(images) * len(targets)


@pytest.mark.parametrize("model", MODELS)
def test_blur_integrated_gradients_equal_the_package(served: Callable[[str], Served], model: str) -> None:
    stub, network = served(model).stub, served(model).network
    images = images_for(model)
    params = pb.BlurIntegratedGradientsParams(steps=BLUR_STEPS, max_sigma=20.0, sqrt=model == "shapes")
    response = attribute(
        stub, request(model, images, aggregation=pb.AGGREGATION_NONE, blur_integrated_gradients=params)
    )
    ours = maps(response)
    method, function = saliency.BlurIG(), call_model_function(network)
    for j, target in enumerate(TARGETS):
        for i, image in enumerate(images):
            reference = method.GetMask(
                channels_last(image).astype(np.float64),  # see BLUR_REFERENCE_IN_FLOAT64
                function,
                {"target": target},
                max_sigma=20.0,
                steps=BLUR_STEPS,
                sqrt=model == "shapes",
                # batch_size 1: with larger batches the package weighs every step of a batch by the
                # last step's sigma increment, which is wrong for the square-root spacing
                batch_size=1,
            )
            assert relative_error(ours[j, i], reference.transpose(2, 0, 1)) <= TOLERANCE
    # the targets share each (image, step) forward
    assert response.stats.forward_passes == len(images) * (BLUR_STEPS + 1)
    assert response.stats.backward_passes == len(images) * BLUR_STEPS * len(TARGETS)


@pytest.mark.parametrize("model", MODELS)
def test_xrai_equals_the_package(served: Callable[[str], Served], model: str) -> None:
    stub, network = served(model).stub, served(model).network
    images = images_for(model)
    response = attribute(stub, request(model, images, xrai=pb.XraiParams(steps=XRAI_STEPS)))
    ours = maps(response)
    method, function = saliency.XRAI(), call_model_function(network)
    options = saliency.XRAIParameters(steps=XRAI_STEPS)
    for j, target in enumerate(TARGETS):
        for i, image in enumerate(images):
            reference = method.GetMask(
                channels_last(image),
                function,
                {"target": target},
                batch_size=package_batch(model, XRAI_STEPS),
                extra_parameters=options,
            )
            assert relative_error(ours[j, i], reference) <= TOLERANCE
    assert response.stats.forward_passes == len(images) * (2 * XRAI_STEPS + 1)


def test_xrai_area_threshold_leaves_one_last_region(
    shapes: Served,
) -> None:
    stub, image = shapes.stub, IMAGES[0]
    params = pb.XraiParams(steps=XRAI_STEPS, area_threshold=0.3, min_pixel_diff=20)
    ours = maps(attribute(stub, request("shapes", image[None], xrai=params)))
    options = saliency.XRAIParameters(steps=XRAI_STEPS, area_threshold=0.3)
    options.experimental_params["min_pixel_diff"] = 20
    for j, target in enumerate(TARGETS):
        reference = saliency.XRAI().GetMask(
            channels_last(image),
            call_model_function(shapes.network),
            {"target": target},
            batch_size=XRAI_STEPS,
            extra_parameters=options,
        )
        assert relative_error(ours[j, 0], reference) <= TOLERANCE


@pytest.mark.parametrize("base", ["guided_integrated_gradients", "blur_integrated_gradients"])
def test_smoothgrad_over_the_pair_gradient_methods_equals_the_package_on_the_same_noise(
    shapes: Served, base: str
) -> None:
    stub = shapes.stub
    samples, sigma, seed, steps = 2, 0.1, 3, 6
    if base == "guided_integrated_gradients":
        inner = {base: pb.GuidedIntegratedGradientsParams(steps=steps)}
    else:
        inner = {base: pb.BlurIntegratedGradientsParams(steps=steps, max_sigma=10.0)}
    params = pb.SmoothGradParams(samples=samples, noise_fraction=sigma, seed=seed, **inner)
    image = IMAGES[1]
    ours = maps(
        attribute(stub, request("shapes", image[None], aggregation=pb.AGGREGATION_NONE, smoothgrad=params))
    )
    function = call_model_function(shapes.network)
    for j, target in enumerate(TARGETS):
        total = np.zeros((3, 64, 64))
        for s in range(samples):
            noisy = channels_last(image + sample_noise(seed, s, image.shape, sigma)).astype(np.float64)
            if base == "guided_integrated_gradients":
                mask = saliency.GuidedIG().GetMask(noisy, function, {"target": target}, x_steps=steps)
            else:
                mask = saliency.BlurIG().GetMask(
                    noisy, function, {"target": target}, max_sigma=10.0, steps=steps, batch_size=steps
                )
            total += mask.transpose(2, 0, 1)
        assert relative_error(ours[j, 0], total / samples) <= TOLERANCE


BAD = [
    ("xrai", pb.XraiParams(steps=1), "xrai.steps"),
    ("xrai", pb.XraiParams(steps=100000), "xrai.steps"),
    ("xrai", pb.XraiParams(area_threshold=0.0), "xrai.area_threshold"),
    ("xrai", pb.XraiParams(area_threshold=1.5), "xrai.area_threshold"),
    ("xrai", pb.XraiParams(min_pixel_diff=0), "xrai.min_pixel_diff"),
    ("xrai", pb.XraiParams(min_pixel_diff=64 * 64 + 1), "xrai.min_pixel_diff"),
    (
        "guided_integrated_gradients",
        pb.GuidedIntegratedGradientsParams(steps=0),
        "guided_integrated_gradients.steps",
    ),
    (
        "guided_integrated_gradients",
        pb.GuidedIntegratedGradientsParams(steps=513),
        "guided_integrated_gradients.steps",
    ),
    (
        "guided_integrated_gradients",
        pb.GuidedIntegratedGradientsParams(fraction=0.0),
        "guided_integrated_gradients.fraction",
    ),
    (
        "guided_integrated_gradients",
        pb.GuidedIntegratedGradientsParams(fraction=1.1),
        "guided_integrated_gradients.fraction",
    ),
    (
        "guided_integrated_gradients",
        pb.GuidedIntegratedGradientsParams(max_dist=-0.1),
        "guided_integrated_gradients.max_dist",
    ),
    (
        "guided_integrated_gradients",
        pb.GuidedIntegratedGradientsParams(max_dist=2.0),
        "guided_integrated_gradients.max_dist",
    ),
    (
        "guided_integrated_gradients",
        pb.GuidedIntegratedGradientsParams(baseline_value=1.5),
        "guided_integrated_gradients.baseline_value",
    ),
    (
        "blur_integrated_gradients",
        pb.BlurIntegratedGradientsParams(steps=0),
        "blur_integrated_gradients.steps",
    ),
    (
        "blur_integrated_gradients",
        pb.BlurIntegratedGradientsParams(max_sigma=0.0),
        "blur_integrated_gradients.max_sigma",
    ),
    (
        "blur_integrated_gradients",
        pb.BlurIntegratedGradientsParams(max_sigma=float("nan")),
        "blur_integrated_gradients.max_sigma",
    ),
    (
        "blur_integrated_gradients",
        pb.BlurIntegratedGradientsParams(max_sigma=5000.0),
        "blur_integrated_gradients.max_sigma",
    ),
    (
        "blur_integrated_gradients",
        pb.BlurIntegratedGradientsParams(grad_step=-1.0),
        "blur_integrated_gradients.grad_step",
    ),
    (
        "blur_integrated_gradients",
        pb.BlurIntegratedGradientsParams(grad_step=11.0),
        "blur_integrated_gradients.grad_step",
    ),
]


@pytest.mark.parametrize(("method", "params", "field"), BAD, ids=[field for _, _, field in BAD])
def test_bad_parameters_name_their_field(shapes: Served, method: str, params: object, field: str) -> None:
    stub = shapes.stub
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request("shapes", IMAGES[:1], **{method: params}))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(field)


def test_a_bad_base_parameter_is_named_under_smoothgrad(shapes: Served) -> None:
    stub = shapes.stub
    params = pb.SmoothGradParams(blur_integrated_gradients=pb.BlurIntegratedGradientsParams(steps=0))
    with pytest.raises(grpc.RpcError) as error:
        attribute(stub, request("shapes", IMAGES[:1], smoothgrad=params))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("smoothgrad.blur_integrated_gradients.steps")
