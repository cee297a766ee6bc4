"""KernelSHAP over gRPC: Captum's coalitions for the same seed, the Shapley values of Captum's regression
(solved in float64), efficiency, and exact Shapley values for an additive model.

Captum's `KernelShap` fits its regression in float32 with the two end coalitions weighted 10⁶, which by
itself moves its maps by up to ~2·10⁻³ of their maximum from the float64 solution of the same problem; the
1e-4 agreement is therefore checked against that float64 solution, and Captum's own output is checked
to its float32 precision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import KernelShap
from glassbox.demo.shapes import generate
from glassbox.methods.superpixels import compose, fit_shapley, shapley_coalitions
from glassbox.models.repository import ModelRepository
from glassbox_client import GlassboxClient
from glassbox_client.types import AttributionResult
from sklearn.linear_model import LinearRegression
from support.model_repository import write_model_version
from support.servers import RunningServer
from torch.distributions.categorical import Categorical

IMAGE = generate(1, seed=13).images[0]
PARAMS = {"samples": 200, "superpixels": 30, "seed": 4, "baseline_value": 0.5}
TARGETS = [2, 5]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kernel-shap-models")
    write_model_version(root, "shapes", "1", seed=2, logit_scale=20.0)
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


@pytest.fixture(scope="module")
def result(client: GlassboxClient) -> AttributionResult:
    return client.attribute(
        IMAGE.numpy(), model="shapes", method="kernel_shap", targets=TARGETS, outputs=("map",), **PARAMS
    )


def captum_coalitions(count: int, samples: int, seed: int) -> torch.Tensor:
    sizes = torch.arange(count, dtype=torch.float)
    probabilities = torch.tensor(float(count - 1)) / (sizes * (count - sizes))
    probabilities[0] = 0.0
    torch.manual_seed(seed)
    generator = KernelShap(torch.nn.Identity()).kernel_shap_perturb_generator(
        torch.zeros(1), num_select_distribution=Categorical(probabilities), num_interp_features=count
    )
    return torch.cat([next(generator) for _ in range(samples)]).bool()


def test_coalitions_are_the_ones_captum_draws_for_the_seed() -> None:
    assert torch.equal(
        shapley_coalitions(31, 120, torch.Generator().manual_seed(8)), captum_coalitions(31, 120, 8)
    )


def test_values_solve_captums_regression(result: AttributionResult, network: torch.nn.Module) -> None:
    attribution = result.images[0].attributions[0]
    segments = torch.from_numpy(attribution.segments)
    keep = captum_coalitions(int(segments.max()) + 1, PARAMS["samples"], PARAMS["seed"])
    with torch.no_grad():
        scores = network(compose(IMAGE, segments, keep, PARAMS["baseline_value"])).double().numpy()
    weights = np.ones(len(keep))
    weights[:2] = 1e6  # Captum's weight of the whole image and of the empty coalition
    for target, attribution in zip(TARGETS, result.images[0].attributions, strict=True):
        solution = (
            LinearRegression().fit(keep.double().numpy(), scores[:, target], sample_weight=weights).coef_
        )
        reference = solution[attribution.segments]
        assert np.abs(attribution.map - reference).max() <= 1e-4 * np.abs(reference).max()


def test_captum_kernel_shap_agrees_to_its_float32_precision(
    result: AttributionResult, network: torch.nn.Module
) -> None:
    for target, attribution in zip(TARGETS, result.images[0].attributions, strict=True):
        torch.manual_seed(PARAMS["seed"])
        reference = (
            KernelShap(network)
            .attribute(
                IMAGE[None],
                target=target,
                baselines=PARAMS["baseline_value"],
                feature_mask=torch.from_numpy(attribution.segments)[None, None],
                n_samples=PARAMS["samples"],
                perturbations_per_eval=64,
            )[0, 0]
            .numpy()
        )
        assert np.abs(attribution.map - reference).max() <= 5e-3 * np.abs(reference).max()


def test_each_distinct_coalition_is_evaluated_once_for_both_targets(result: AttributionResult) -> None:
    first, second = (a.segments for a in result.images[0].attributions)
    np.testing.assert_array_equal(first, second)
    keep = captum_coalitions(int(first.max()) + 1, PARAMS["samples"], PARAMS["seed"])
    distinct = torch.unique(keep, dim=0).shape[0]
    assert distinct < PARAMS["samples"]  # the Shapley kernel draws the smallest and largest sizes often
    assert result.stats.forward_passes == 1 + distinct  # the unmodified image, then each coalition once


def test_values_add_up_to_the_score_difference(result: AttributionResult, network: torch.nn.Module) -> None:
    with torch.no_grad():
        scores = network(torch.stack([IMAGE, torch.full_like(IMAGE, PARAMS["baseline_value"])]))
    for target, attribution in zip(TARGETS, result.images[0].attributions, strict=True):
        difference = float(scores[0, target] - scores[1, target])
        assert attribution.segment_weights.sum() == pytest.approx(difference, rel=1e-4, abs=1e-4)
        assert attribution.target.logit == pytest.approx(float(scores[0, target]), rel=1e-4)


def test_an_additive_score_gives_its_exact_shapley_values() -> None:
    contributions = torch.randn(12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    keep = shapley_coalitions(12, 60, torch.Generator().manual_seed(1))
    scores = keep.double() @ contributions + 0.7
    torch.testing.assert_close(fit_shapley(keep, scores), contributions)


def test_with_the_end_coalitions_only_every_superpixel_shares_equally() -> None:
    keep = shapley_coalitions(5, 2, torch.Generator().manual_seed(0))
    values = fit_shapley(keep, torch.tensor([3.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(values, torch.full((5,), 0.5, dtype=torch.float64))
