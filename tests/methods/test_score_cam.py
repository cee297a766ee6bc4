"""Score-CAM over gRPC: pytorch-grad-cam's `ScoreCAM` maps, the layer map, one masked pass per channel
shared by every target, and the same maps from an ONNX model at the same layer (its intermediate tensor)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from glassbox.demo.shapes import generate
from glassbox.models.repository import ModelRepository
from glassbox_client import GlassboxClient
from pytorch_grad_cam import ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from support.model_repository import write_model_version
from support.servers import RunningServer

os.environ.setdefault("TQDM_DISABLE", "1")  # pytorch-grad-cam's ScoreCAM draws progress bars otherwise
IMAGES = generate(2, seed=14).images


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("score-cam-models")
    write_model_version(root, "shapes", "1", seed=3, logit_scale=20.0)
    write_model_version(root, "shapes-onnx", "1", fmt="onnx", seed=3, logit_scale=20.0)
    return root


@pytest.fixture(scope="module")
def client(start_server: Callable[..., RunningServer], repository: Path) -> Iterator[GlassboxClient]:
    server = start_server(model_repository=repository, cache={"enabled": False})
    with GlassboxClient(server.address, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def network(repository: Path) -> torch.nn.Module:
    models = ModelRepository(repository, device=torch.device("cpu"))
    models.load_all()
    return models.get("shapes").differentiable()


def min_max(values: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's scaling of a CAM to [0, 1]."""
    shifted = values - values.min()
    return shifted / (1e-7 + shifted.max())


@pytest.mark.parametrize("layer", ["features.14", "features.10"])
def test_maps_equal_pytorch_grad_cam_score_cam(
    client: GlassboxClient, network: torch.nn.Module, layer: str
) -> None:
    result = client.attribute(
        list(IMAGES.numpy()),
        model="shapes",
        method="score_cam",
        targets=[0, 3],
        outputs=("map",),
        layer=layer,
    )
    for image, maps in zip(IMAGES, result.images, strict=True):
        for target, attribution in zip([0, 3], maps.attributions, strict=True):
            with ScoreCAM(network, [network.net.get_submodule(layer)]) as cam:
                reference = cam(image[None], [ClassifierOutputTarget(target)])[0]
            assert attribution.map.shape == (64, 64) and attribution.map.min() >= 0
            assert np.abs(min_max(attribution.map) - reference).max() <= 1e-4


def test_the_map_is_the_layer_map_upsampled(client: GlassboxClient) -> None:
    attribution = client.explain(
        IMAGES[0].numpy(), model="shapes", method="score_cam", target=1, outputs=("map",)
    )
    assert attribution.layer_map.shape == (8, 8)  # features.14, the default CAM layer, at 64×64 input
    upsampled = F.interpolate(
        torch.from_numpy(attribution.layer_map)[None, None],
        size=(64, 64),
        mode="bilinear",
        align_corners=False,
    )[0, 0].numpy()
    np.testing.assert_allclose(attribution.map, upsampled, atol=1e-5 * float(np.abs(upsampled).max()))


def test_one_masked_pass_per_channel_serves_every_target(client: GlassboxClient) -> None:
    kwargs = {"model": "shapes", "method": "score_cam", "outputs": ("map",), "layer": "features.10"}
    one = client.attribute(IMAGES[0].numpy(), targets=[2], **kwargs)
    four = client.attribute(list(IMAGES.numpy()), targets=[2, 0, 1, 5], **kwargs)
    channels = 64  # features.10: the third block's ReLU, [64, 16, 16]
    assert one.stats.forward_passes == channels + 1
    assert four.stats.forward_passes == 2 * (channels + 1)


def test_an_onnx_model_gives_the_torch_maps_at_the_same_layer(client: GlassboxClient) -> None:
    """The ONNX export of the same weights names its layers by tensor; features.14's ReLU output is
    `/features/features.14/Relu_output_0` (BatchNorm folded into the convolution by the exporter)."""
    info = client.model("shapes-onnx")
    assert "score_cam" in info.supported_methods
    layers = {layer.name: layer for layer in info.layers}
    onnx_layer = "/features/features.14/Relu_output_0"
    assert layers[onnx_layer].output_shape == (128, 8, 8) and layers[onnx_layer].cam_compatible
    kwargs = {"method": "score_cam", "targets": [0, 3], "outputs": ("map",)}
    torch_maps = client.attribute(list(IMAGES.numpy()), model="shapes", layer="features.14", **kwargs)
    onnx_maps = client.attribute(list(IMAGES.numpy()), model="shapes-onnx", layer=onnx_layer, **kwargs)
    assert onnx_maps.stats.forward_passes == torch_maps.stats.forward_passes == 2 * (128 + 1)
    for ours, reference in zip(onnx_maps.images, torch_maps.images, strict=True):
        for a, b in zip(ours.attributions, reference.attributions, strict=True):
            assert np.abs(a.map - b.map).max() <= 1e-4 * np.abs(b.map).max()
            assert np.abs(a.layer_map - b.layer_map).max() <= 1e-4 * np.abs(b.layer_map).max()
