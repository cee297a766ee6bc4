"""LIME over gRPC: Captum's `Lime` maps for the same seed and segmentation, the segmentation and weights
extras, `num_features`, and seeded reproducibility."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import Lime
from captum.attr._core.lime import default_perturb_func, get_exp_kernel_similarity_function
from glassbox.demo.shapes import generate
from glassbox.methods.superpixels import lime_coalitions
from glassbox.models.repository import ModelRepository
from glassbox_client import GlassboxClient
from support.model_repository import write_model_version
from support.servers import RunningServer

IMAGES = generate(2, seed=12).images
PARAMS = {"samples": 200, "superpixels": 30, "kernel_width": 0.3, "seed": 9, "baseline_value": 0.4}


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lime-models")
    write_model_version(root, "shapes", "1", seed=1, logit_scale=300.0)
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


def test_coalitions_are_the_ones_captum_draws_for_the_seed() -> None:
    ours = lime_coalitions(37, 50, torch.Generator().manual_seed(5))
    torch.manual_seed(5)
    captums = torch.cat([default_perturb_func(torch.zeros(1), num_interp_features=37) for _ in range(50)])
    assert torch.equal(ours, captums.bool())


def distinct_coalitions(superpixels: int) -> int:
    keep = lime_coalitions(superpixels, PARAMS["samples"], torch.Generator().manual_seed(PARAMS["seed"]))
    return torch.unique(keep, dim=0).shape[0]


def test_maps_equal_captum_lime_with_the_same_seed_and_segmentation(
    client: GlassboxClient, network: torch.nn.Module
) -> None:
    result = client.attribute(
        list(IMAGES.numpy()), model="shapes", method="lime", targets=[1, 4], outputs=("map",), **PARAMS
    )
    # each image: its unmodified pass, then every distinct coalition once, whatever the number of targets
    expected = sum(
        1 + distinct_coalitions(int(maps.attributions[0].segments.max()) + 1) for maps in result.images
    )
    assert result.stats.forward_passes == expected
    lime = Lime(network, similarity_func=get_exp_kernel_similarity_function("cosine", PARAMS["kernel_width"]))
    for image, maps in zip(IMAGES, result.images, strict=True):
        for target, attribution in zip([1, 4], maps.attributions, strict=True):
            torch.manual_seed(PARAMS["seed"])
            reference = lime.attribute(
                image[None],
                target=target,
                baselines=PARAMS["baseline_value"],
                feature_mask=torch.from_numpy(attribution.segments)[None, None],
                n_samples=PARAMS["samples"],
                perturbations_per_eval=64,
            )[0, 0].numpy()
            assert np.abs(reference).max() > 1e-3
            assert np.abs(attribution.map - reference).max() <= 1e-4 * np.abs(reference).max()


def test_the_map_paints_each_superpixel_with_its_weight(client: GlassboxClient) -> None:
    attribution = client.explain(
        IMAGES[0].numpy(), model="shapes", method="lime", target=2, outputs=("map",), **PARAMS
    )
    segments, weights = attribution.segments, attribution.segment_weights
    assert segments.shape == (64, 64) and segments.dtype == np.int64
    assert np.array_equal(np.unique(segments), np.arange(weights.shape[0]))  # ids 0..S-1, all used
    assert 15 <= weights.shape[0] <= 45  # SLIC lands near the 30 asked for
    np.testing.assert_array_equal(attribution.map, weights[segments])


def test_num_features_keeps_the_strongest_superpixels(client: GlassboxClient) -> None:
    full = client.explain(
        IMAGES[1].numpy(), model="shapes", method="lime", target=0, outputs=("map",), **PARAMS
    )
    top = client.explain(
        IMAGES[1].numpy(), model="shapes", method="lime", target=0, outputs=("map",), num_features=3, **PARAMS
    )
    strongest = set(np.argsort(-np.abs(full.segment_weights), kind="stable")[:3].tolist())
    assert set(np.flatnonzero(top.segment_weights).tolist()) <= strongest
    assert np.count_nonzero(top.segment_weights) >= 1


def test_the_same_seed_gives_the_same_map_and_another_seed_another(client: GlassboxClient) -> None:
    def weights(seed: int) -> np.ndarray:
        params = {**PARAMS, "seed": seed}
        return client.explain(
            IMAGES[0].numpy(), model="shapes", method="lime", target=3, outputs=("map",), **params
        ).segment_weights

    np.testing.assert_array_equal(weights(1), weights(1))
    assert not np.array_equal(weights(1), weights(2))
