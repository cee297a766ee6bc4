"""Every number of an explanation check equals an independent computation: Spearman from
scipy.stats.spearmanr, SSIM from skimage.metrics.structural_similarity, the top-k overlap from numpy
sets, prediction agreement from numpy, and the localisation and deletion / insertion AUCs from the
explanation_evaluation job itself (`evaluation.evaluate`) on the same images, targets and method."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from glassbox.config import Settings
from glassbox.core.cancellation import CancellationToken
from glassbox.evaluation.evaluate import evaluate
from glassbox.evaluation.explain import explain
from glassbox.evaluation.report import OBJECT_REGION
from glassbox.evaluation.spec import (
    EvaluationJob,
    FaithfulnessOptions,
    LocalisationOptions,
    Metric,
    Region,
)
from glassbox.models.repository import ModelRepository
from glassbox.monitoring.checks import Compared, method_config, plan, run_check
from glassbox.monitoring.config import ExplanationMonitoring
from glassbox.monitoring.similarity import map_similarity, prediction_agreement
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from support.paths import MODELS

IMAGES = 12
CORNER = Region("corner", 0, 0, 8, 8)

SETTINGS = Settings()
"""The embedded defaults: the caps a server without a settings file checks with."""


def _scipy_spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(np.abs(a).ravel(), np.abs(b).ravel()).statistic)


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.abs(a).astype(np.float64), np.abs(b).astype(np.float64)
    return float(structural_similarity(a / a.max(), b / b.max(), data_range=1.0))


def _numpy_top_k(a: np.ndarray, b: np.ndarray, percent: float) -> float:
    k = max(1, round(a.size * percent / 100))
    first = set(np.argsort(-np.abs(a).ravel(), kind="stable")[:k].tolist())
    second = set(np.argsort(-np.abs(b).ravel(), kind="stable")[:k].tolist())
    return len(first & second) / k


@pytest.fixture(scope="module")
def repository() -> ModelRepository:
    repository = ModelRepository(Path(MODELS), device=torch.device("cpu"))
    repository.load_all()
    return repository


def test_similarity_of_random_maps_matches_scipy_skimage_and_numpy() -> None:
    generator = torch.Generator().manual_seed(0)
    before = torch.randn(5, 32, 40, generator=generator)
    after = before + 0.7 * torch.randn(5, 32, 40, generator=generator)
    result = map_similarity(before, after, 7.5)
    for i in range(5):
        a, b = before[i].numpy(), after[i].numpy()
        assert result.spearman[i].item() == pytest.approx(_scipy_spearman(a, b), abs=1e-6)
        assert result.ssim[i].item() == pytest.approx(_skimage_ssim(a, b), abs=1e-6)
        assert result.top_k_overlap[i].item() == pytest.approx(_numpy_top_k(a, b, 7.5), abs=1e-6)
    identical = map_similarity(before, before.clone(), 10)
    assert torch.allclose(identical.spearman, torch.ones(5)) and torch.allclose(identical.ssim, torch.ones(5))
    assert torch.equal(identical.top_k_overlap, torch.ones(5))
    logits = torch.randn(40, 6, generator=generator)
    other = logits + torch.randn(40, 6, generator=generator)
    expected = float(np.mean(logits.numpy().argmax(1) == other.numpy().argmax(1)))
    assert prediction_agreement(logits, other) == pytest.approx(expected)


def test_a_check_equals_the_evaluation_job_and_the_reference_libraries(repository: ModelRepository) -> None:
    honest, shortcut = repository.get("shapes"), repository.get("shapes-shortcut")
    images = repository.dataset("shapes", "shapes-val", max_pixels=10**8).head(IMAGES)
    config = ExplanationMonitoring(
        reference_set="shapes-val", interval_hours=0, methods=("saliency", "grad_cam"), images=IMAGES,
        steps=8, top_k_percent=10, regions=(CORNER,),
    )  # fmt: skip
    record = run_check(
        honest,
        [Compared("1", "baseline", shortcut)],
        config,
        images,
        CancellationToken(),
        SETTINGS,
        trigger="new_version",
    )
    assert record.forward_passes == record.budget_forward_passes and record.backward_passes > 0
    estimate = plan(honest, [Compared("1", "baseline", shortcut)], config, IMAGES, SETTINGS)
    assert record.budget_forward_passes == estimate.forward_rows + estimate.backward_rows
    assert images.labels is not None and images.masks is not None
    for name in config.methods:
        check = record.method(name)
        job = EvaluationJob(
            model=honest,
            images=images.images,
            masks=images.masks,
            labels=images.labels,
            use_labels=True,
            methods=(method_config(name),),
            metrics=(Metric.DELETION, Metric.INSERTION, Metric.POINTING_GAME, Metric.RELEVANCE_MASS),
            faithfulness=FaithfulnessOptions(steps=8),
            localisation=LocalisationOptions(regions=(CORNER,)),
            example_images=0,
        )
        report = evaluate(job, CancellationToken(), torch.Generator().manual_seed(0), lambda *_: None)
        (method,) = report.methods
        assert check.deletion_auc == pytest.approx(method.deletion.auc, abs=1e-6)
        assert check.insertion_auc == pytest.approx(method.insertion.auc, abs=1e-6)
        scores = {score.region: score for score in method.localisation}
        assert check.pointing_game == pytest.approx(scores[OBJECT_REGION].pointing_hit_rate)
        assert check.relevance_mass == pytest.approx(scores[OBJECT_REGION].relevance_mass, abs=1e-6)
        (corner,) = check.regions
        assert corner.mass == pytest.approx(scores["corner"].relevance_mass, abs=1e-6)
        assert corner.area_fraction == pytest.approx(64 / 4096)
        mine = explain(
            honest, method_config(name), images.images, images.labels, CancellationToken(), SETTINGS
        )
        theirs = explain(
            shortcut, method_config(name), images.images, images.labels, CancellationToken(), SETTINGS
        )
        pairs = list(zip(theirs.values.numpy(), mine.values.numpy(), strict=True))
        (similarity,) = check.similarity
        assert similarity.spearman == pytest.approx(
            np.mean([_scipy_spearman(a, b) for a, b in pairs]), abs=1e-5
        )
        assert similarity.ssim == pytest.approx(np.mean([_skimage_ssim(a, b) for a, b in pairs]), abs=1e-5)
        assert similarity.top_k_overlap == pytest.approx(
            np.mean([_numpy_top_k(a, b, 10) for a, b in pairs]), abs=1e-6
        )
    with torch.no_grad():
        ours, other = (m.logits(images.images).numpy().argmax(1) for m in (honest, shortcut))
    (agreement,) = record.agreements
    assert agreement.prediction_agreement == pytest.approx(float(np.mean(ours == other)))
