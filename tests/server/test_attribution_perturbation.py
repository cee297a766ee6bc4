"""The perturbation methods (occlusion, LIME, KernelSHAP, Score-CAM) over gRPC: on the shipped demo models
they find the shortcut model's corner patch and the clean model's object; bad parameters get
INVALID_ARGUMENT naming the field (and the cap, when a cap is exceeded) and the server keeps serving; a
client deadline stops the computation, not only the call."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import torch
from glassbox.demo.shapes import PATCH_SIZE, generate
from glassbox_client import GlassboxClient
from glassbox_client.errors import DeadlineExceededError, InvalidArgumentError
from support.model_repository import write_model_version
from support.servers import RunningServer

IMAGE = generate(1, seed=15).images[0].numpy()
MAX_SAMPLES, MAX_PERTURBATIONS = 600, 100  # the methods' default samples (500) are under the cap


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("perturbation-models")
    write_model_version(root, "shapes", "1", seed=0)
    write_model_version(root, "shapes-onnx", "1", fmt="onnx", seed=0)
    write_model_version(root, "shapes-256", "1", seed=0, size=(256, 256))
    return root


@pytest.fixture(scope="module")
def client(start_server: Callable[..., RunningServer], repository: Path) -> Iterator[GlassboxClient]:
    server = start_server(
        model_repository=repository,
        cache={"enabled": False},
        attribution={"max_samples": MAX_SAMPLES, "max_perturbations": MAX_PERTURBATIONS},
    )
    with GlassboxClient(server.address, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def demo(start_server: Callable[..., RunningServer]) -> Iterator[GlassboxClient]:
    """A server on the shipped model repository (the trained demo models)."""
    server = start_server(cache={"enabled": False})
    with GlassboxClient(server.address, timeout=120) as client:
        yield client


def enrichment(maps: list[np.ndarray], regions: torch.Tensor) -> float:
    """Median over images of (share of the positive attribution inside the region) / (region's area share)."""
    ratios = []
    for attribution, region in zip(maps, regions.numpy(), strict=True):
        positive = np.clip(attribution, 0, None)
        ratios.append(positive[region].sum() / max(positive.sum(), 1e-12) / region.mean())
    return float(np.median(ratios))


@pytest.mark.parametrize("method", ["occlusion", "lime", "kernel_shap", "score_cam"])
def test_the_demo_maps_find_the_shortcut_patch_and_the_object(demo: GlassboxClient, method: str) -> None:
    shortcut = generate(6, seed=21, shortcut="train")
    maps = [
        a.attributions[0].map
        for a in demo.attribute(
            list(shortcut.images.numpy()), model="shapes-shortcut", method=method, outputs=("map",)
        ).images
    ]
    patch = torch.zeros(6, 64, 64, dtype=torch.bool)
    patch[:, :PATCH_SIZE, :PATCH_SIZE] = True
    assert enrichment(maps, patch) > 4.0  # the model reads the class off the corner patch
    clean = generate(6, seed=21)
    maps = [
        a.attributions[0].map
        for a in demo.attribute(
            list(clean.images.numpy()), model="shapes", method=method, outputs=("map",)
        ).images
    ]
    assert enrichment(maps, clean.masks) > 1.3  # the clean model looks at the shape


def still_serving(client: GlassboxClient) -> None:
    result = client.attribute(
        IMAGE, model="shapes", method="occlusion", targets=[0], outputs=("map",), window=16, stride=16
    )
    assert result.stats.forward_passes == 4 * 4 + 1


BAD_PARAMETERS: list[tuple[str, dict[str, Any], str, str]] = [
    ("occlusion", {"window": 0}, "occlusion.window", "at least 1"),
    ("occlusion", {"window": 65, "stride": 65}, "occlusion.window", "larger than the 64x64 input"),
    ("occlusion", {"window": 8, "stride": 0}, "occlusion.stride", "at least 1"),
    ("occlusion", {"window": 4, "stride": 5}, "occlusion.stride", "larger than the window"),
    ("occlusion", {"baseline_value": 1.5}, "occlusion.baseline_value", "[0, 1]"),
    ("occlusion", {"window": 8, "stride": 4}, "occlusion.stride", "max_perturbations = 100"),
    ("lime", {"samples": 0}, "lime.samples", f"1..{MAX_SAMPLES}"),
    ("lime", {"samples": MAX_SAMPLES + 1}, "lime.samples", "max_samples"),
    ("lime", {"kernel_width": 0.0}, "lime.kernel_width", "> 0"),
    ("lime", {"kernel_width": -1.0}, "lime.kernel_width", "> 0"),
    ("lime", {"kernel_width": math.inf}, "lime.kernel_width", "> 0"),
    ("lime", {"superpixels": 1}, "lime.superpixels", "2..1024"),
    ("lime", {"num_features": -1}, "lime.num_features", "0..1024"),
    ("kernel_shap", {"samples": 1}, "kernel_shap.samples", f"2..{MAX_SAMPLES}"),
    ("kernel_shap", {"samples": MAX_SAMPLES + 1}, "kernel_shap.samples", "max_samples"),
    ("kernel_shap", {"baseline_value": -0.1}, "kernel_shap.baseline_value", "[0, 1]"),
    ("kernel_shap", {"superpixels": 5000}, "kernel_shap.superpixels", "2..1024"),
    ("score_cam", {"layer": "no.such.layer"}, "score_cam.layer", "no layer"),
    ("score_cam", {"layer": "classifier.2"}, "score_cam.layer", "output shape"),
    ("score_cam", {"layer": "features.14"}, "score_cam.layer", "max_perturbations = 100"),
]


@pytest.mark.parametrize(("method", "params", "field", "message"), BAD_PARAMETERS)
def test_bad_parameters_are_refused_naming_the_field(
    client: GlassboxClient, method: str, params: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidArgumentError) as error:
        client.attribute(IMAGE, model="shapes", method=method, targets=[0], outputs=("map",), **params)
    assert error.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.field == field
    assert message in error.value.message
    still_serving(client)


UNIFORM = np.full((64, 64, 3), 128, dtype=np.uint8)
NEARLY_UNIFORM = np.clip(128 + np.random.default_rng(3).normal(0, 2, (64, 64, 3)), 0, 255).astype(np.uint8)
NOISE = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
SLIC_FAILURES = [("uniform", UNIFORM, 2), ("nearly uniform", NEARLY_UNIFORM, 16), ("noise", NOISE, 50)]


@pytest.mark.parametrize("method", ["lime", "kernel_shap"])
@pytest.mark.parametrize(("name", "image", "superpixels"), SLIC_FAILURES)
def test_where_slic_finds_one_superpixel_a_regular_grid_is_used_and_reported(
    client: GlassboxClient, method: str, name: str, image: np.ndarray, superpixels: int
) -> None:
    """On these images SLIC finds a single segment: the call still explains them, on a grid of the
    requested size, and says so."""
    (attribution,) = (
        client.attribute(
            image, model="shapes", method=method, targets=[0], outputs=("map",), superpixels=superpixels
        )
        .images[0]
        .attributions
    )
    assert attribution.segmentation == "grid", name
    cells = len(attribution.segment_weights)
    assert attribution.segments.shape == (64, 64) and abs(cells - superpixels) <= superpixels // 8
    assert np.array_equal(np.unique(attribution.segments), np.arange(cells))
    assert np.isfinite(attribution.map).all()


@pytest.mark.parametrize("superpixels", [2, 16, 50, 200])
def test_the_grid_fallback_has_about_the_requested_cells(client: GlassboxClient, superpixels: int) -> None:
    """Nearly uniform: SLIC finds one segment, or two when asked for 200 (under a quarter: a grid too)."""
    (attribution,) = (
        client.attribute(
            NEARLY_UNIFORM,
            model="shapes",
            method="lime",
            targets=[0],
            outputs=("map",),
            superpixels=superpixels,
        )
        .images[0]
        .attributions
    )
    cells = len(attribution.segment_weights)
    assert attribution.segmentation == "grid" and abs(cells - superpixels) <= superpixels // 8
    sizes = np.bincount(attribution.segments.ravel())
    assert sizes.max() <= 2 * sizes.min()  # near-equal cells


def test_an_image_with_regions_keeps_slic(client: GlassboxClient) -> None:
    quadrants = np.zeros((64, 64, 3), dtype=np.uint8)
    quadrants[:32, :32], quadrants[:32, 32:], quadrants[32:, :32] = (
        (230, 40, 40),
        (40, 200, 60),
        (30, 60, 220),
    )
    (attribution,) = (
        client.attribute(
            quadrants, model="shapes", method="lime", targets=[0], outputs=("map",), superpixels=30
        )
        .images[0]
        .attributions
    )
    assert attribution.segmentation == "slic" and len(attribution.segment_weights) >= 30 // 4


def test_score_cam_on_an_onnx_model_names_its_tensor_layers(client: GlassboxClient) -> None:
    """ONNX layers are the graph's tensors: a torch module name is not one; the error says where to look."""
    with pytest.raises(InvalidArgumentError) as error:
        client.attribute(
            IMAGE, model="shapes-onnx", method="score_cam", targets=[0], outputs=("map",), layer="features.14"
        )
    assert error.value.field == "score_cam.layer" and "GetModel lists the layer names" in error.value.message
    still_serving(client)


def test_a_deadline_stops_the_computation_within_a_batch(
    start_server: Callable[..., RunningServer], repository: Path
) -> None:
    server = start_server(model_repository=repository, cache={"enabled": False})
    large = generate(1, seed=15, size=256).images[0].numpy()
    with GlassboxClient(server.address, timeout=60) as client:
        # 16384 occluded 256×256 inputs: tens of seconds of work on this machine
        with pytest.raises(DeadlineExceededError):
            client.attribute(
                large,
                model="shapes-256",
                method="occlusion",
                targets=[0],
                outputs=("map",),
                window=2,
                stride=2,
                timeout=0.5,
            )
        # The batch running when the deadline passed may finish (slower when the machine is shared);
        # the remaining tens of seconds of work must not run: within 5 s a quiet half-second comes.
        windows = []
        for _ in range(10):
            wall, cpu = time.perf_counter(), time.process_time()
            time.sleep(0.5)
            windows.append((time.process_time() - cpu) / (time.perf_counter() - wall))
            if windows[-1] < 0.3:
                break
        assert windows[-1] < 0.3, f"the server still computes after the deadline: {windows}"
        still_serving(client)
