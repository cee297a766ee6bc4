"""Occlusion over gRPC: Captum's `Occlusion` maps, passes shared by the targets, maps independent of the
batch size, and the same maps from the ONNX backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import Occlusion
from glassbox.demo.shapes import generate
from glassbox.methods.occlusion import window_starts
from glassbox.models.repository import ModelRepository
from glassbox_client import GlassboxClient
from support.model_repository import write_model_version
from support.servers import RunningServer

IMAGES = generate(2, seed=11).images


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("occlusion-models")
    write_model_version(root, "shapes", "1", seed=0, logit_scale=20.0)
    write_model_version(root, "shapes-onnx", "1", fmt="onnx", seed=0, logit_scale=20.0)
    return root


@pytest.fixture(scope="module")
def client(start_server: Callable[..., RunningServer], repository: Path) -> Iterator[GlassboxClient]:
    server = start_server(model_repository=repository, cache={"enabled": False})
    with GlassboxClient(server.address, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def network(repository: Path) -> torch.nn.Module:
    """The same weights in this process (pixels → logits), for the reference."""
    models = ModelRepository(repository, device=torch.device("cpu"))
    models.load_all()
    return models.get("shapes").differentiable()


def captum_map(
    network: torch.nn.Module, image: torch.Tensor, target: int, window: int, stride: int
) -> np.ndarray:
    attribution = Occlusion(network).attribute(
        image[None],
        target=target,
        sliding_window_shapes=(3, window, window),
        strides=(3, stride, stride),
        baselines=0.3,
        perturbations_per_eval=64,
    )[0]
    assert torch.equal(attribution[0], attribution[1]) and torch.equal(attribution[0], attribution[2])
    return attribution[0].numpy()


@pytest.mark.parametrize(("window", "stride"), [(8, 4), (10, 7), (64, 1)])
def test_maps_equal_captum_occlusion(
    client: GlassboxClient, network: torch.nn.Module, window: int, stride: int
) -> None:
    result = client.attribute(
        list(IMAGES.numpy()),
        model="shapes",
        method="occlusion",
        image_targets=[[1, 4], [5]],
        outputs=("map",),
        window=window,
        stride=stride,
        baseline_value=0.3,
    )
    for image, targets, maps in zip(IMAGES, [[1, 4], [5]], result.images, strict=True):
        assert [a.target.index for a in maps.attributions] == targets
        for target, attribution in zip(targets, maps.attributions, strict=True):
            reference = captum_map(network, image, target, window, stride)
            assert attribution.map.shape == (64, 64)
            assert np.abs(reference).max() > 1e-3  # a map worth comparing
            assert np.abs(attribution.map - reference).max() <= 1e-4 * np.abs(reference).max()


def test_every_target_reuses_the_same_occluded_passes(client: GlassboxClient) -> None:
    windows = len(window_starts(64, 8, 4)) ** 2
    one = client.attribute(
        IMAGES[0].numpy(), model="shapes", method="occlusion", targets=[2], outputs=("map",)
    )
    three = client.attribute(
        IMAGES[0].numpy(), model="shapes", method="occlusion", targets=[2, 0, 5], outputs=("map",)
    )
    assert one.stats.forward_passes == three.stats.forward_passes == windows + 1
    np.testing.assert_allclose(
        three.images[0].attributions[0].map, one.images[0].attributions[0].map, atol=1e-6
    )


def test_the_onnx_backend_gives_the_same_maps(client: GlassboxClient) -> None:
    kwargs = {"method": "occlusion", "targets": [1, 3], "outputs": ("map",), "window": 12, "stride": 6}
    torch_maps = client.attribute(IMAGES[1].numpy(), model="shapes", **kwargs).images[0].attributions
    onnx_maps = client.attribute(IMAGES[1].numpy(), model="shapes-onnx", **kwargs).images[0].attributions
    for on_torch, on_onnx in zip(torch_maps, onnx_maps, strict=True):
        assert np.abs(on_onnx.map - on_torch.map).max() <= 1e-4 * np.abs(on_torch.map).max()


def test_a_tiny_memory_budget_changes_the_batches_not_the_maps(
    start_server: Callable[..., RunningServer], repository: Path, client: GlassboxClient
) -> None:
    tight = start_server(
        model_repository=repository, cache={"enabled": False}, attribution={"memory_budget_bytes": 1}
    )
    kwargs = {"method": "occlusion", "targets": [0], "outputs": ("map",), "window": 16, "stride": 12}
    with GlassboxClient(tight.address, timeout=120) as one_row_batches:
        batched_one_by_one = one_row_batches.attribute(IMAGES[0].numpy(), model="shapes", **kwargs)
    default = client.attribute(IMAGES[0].numpy(), model="shapes", **kwargs)
    assert batched_one_by_one.stats.forward_passes == default.stats.forward_passes == 5 * 5 + 1
    np.testing.assert_allclose(
        batched_one_by_one.images[0].attributions[0].map, default.images[0].attributions[0].map, atol=1e-5
    )
