"""One explanation check of a model version on its reference set, for every monitored method:

* localisation, where the set has object masks: the pointing game (Zhang et al.'s tolerance) and the
  relevance mass inside the mask; and the mass inside each named region, wherever masks are;
* faithfulness: deletion and insertion AUC (Petsiuk et al. 2018), computed by the evaluation job's own
  code (`evaluation.curves`, blurred baseline, the job's default σ);
* stability: the per-image similarity of its maps to those of each compared version (the previous
  version, and the pinned baseline) for the same targets, and prediction agreement;
* a verdict from the thresholds.

Targets are the set's labels (the predictions of the checked version when the set has none), so both
versions explain the same class of each image. The check knows its forward-pass budget before it runs
(`plan`): it is stated in the log and in the record, with the passes it really took.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import torch

from glassbox.backends.base import Model
from glassbox.config import Settings
from glassbox.core.call import CallContext
from glassbox.core.cancellation import CancellationToken
from glassbox.evaluation import curves, localisation
from glassbox.evaluation.evaluate import logits_of
from glassbox.evaluation.explain import explain
from glassbox.evaluation.spec import FaithfulnessOptions, MethodConfig
from glassbox.methods.registry import method_class
from glassbox.models.datasets import LabelledImages
from glassbox.monitoring.config import ExplanationMonitoring
from glassbox.monitoring.record import (
    DRIFT,
    PASS,
    Agreement,
    ExplanationRecord,
    MethodCheck,
    RegionMass,
    Similarity,
)
from glassbox.monitoring.similarity import map_similarity, prediction_agreement
from glassbox.serving import Estimate
from glassbox.serving.execution import SCHEDULED

FAITHFULNESS = FaithfulnessOptions()
"""The evaluation job's defaults: blurred baseline, σ = 5 px (the steps come from the table)."""


@dataclass(frozen=True)
class Compared:
    """A version the checked one is compared with, and its own latest check (None: not checked yet)."""

    version: str
    relation: str
    model: Model
    record: ExplanationRecord | None = None


def method_config(name: str) -> MethodConfig:
    """A monitored method: its registry name with default parameters, channels summed."""
    return MethodConfig(name, name, method_class(name).Params())


def plan(
    model: Model, compared: list[Compared], config: ExplanationMonitoring, count: int, settings: Settings
) -> Estimate:
    """What the check asks of the device: every version's predictions and maps, and the checked version's
    deletion and insertion curves, within the server's `settings`. `forward_rows + backward_rows` is the
    forward-pass budget."""
    forward, backward = 0, 0
    for version_model in [model, *(c.model for c in compared)]:
        call = CallContext(version_model, CancellationToken(), settings.attribution, compute=SCHEDULED)
        forward += count
        for name in config.methods:
            cls = method_class(name)
            rows = cls(version_model, cls.Params(), call, field=name).planned_rows(count, 1)
            forward, backward = forward + rows[0], backward + rows[1]
    forward += 2 * len(config.methods) * curves.forward_budget(count, config.steps)
    return Estimate(forward_rows=forward, backward_rows=backward)


def _localisation(
    maps: torch.Tensor, masks: torch.Tensor | None, config: ExplanationMonitoring
) -> tuple[float | None, float | None, tuple[RegionMass, ...]]:
    count, height, width = maps.shape
    pointing = mass = None
    if masks is not None:
        tolerance = localisation.paper_tolerance(height, width)
        pointing = float(localisation.pointing_hits(maps, masks, tolerance).float().mean())
        mass = float(localisation.relevance_mass(maps, masks).mean())
    regions = []
    for region in config.regions:
        inside = region.mask(height, width).expand(count, height, width)
        regions.append(
            RegionMass(
                region.name,
                float(localisation.relevance_mass(maps, inside).mean()),
                float(localisation.area_fraction(inside[:1]).item()),
            )
        )
    return pointing, mass, tuple(regions)


class _Counter:
    def __init__(self) -> None:
        self.forward = self.backward = 0

    def add(self, call: CallContext) -> None:
        self.forward += call.counter.forward
        self.backward += call.counter.backward


def run_check(
    model: Model,
    compared: list[Compared],
    config: ExplanationMonitoring,
    images: LabelledImages,
    token: CancellationToken,
    settings: Settings,
    *,
    trigger: str,
    notes: list[str] | tuple[str, ...] = (),
) -> ExplanationRecord:
    """Check `model` (the version) against the `compared` versions on `images` (see the module doc);
    `notes` join the record's version-level reasons."""
    started = time.perf_counter()
    budget = plan(model, compared, config, len(images), settings)
    counter = _Counter()

    def call_on(version_model: Model) -> CallContext:
        return CallContext(version_model, token, settings.attribution, compute=SCHEDULED)

    pixels = images.images
    current_call = call_on(model)
    logits = logits_of(current_call, pixels)
    counter.add(current_call)
    targets = images.labels if images.labels is not None else logits.argmax(dim=1)
    other_logits = {}
    for other in compared:
        other_call = call_on(other.model)
        other_logits[other.version] = logits_of(other_call, pixels)
        counter.add(other_call)
    baselines = curves.baseline_images(pixels, FAITHFULNESS.baseline, FAITHFULNESS.blur_sigma)
    checks = []
    for name in config.methods:
        maps = explain(model, method_config(name), pixels, targets, token, settings)
        counter.forward += maps.forward_passes
        counter.backward += maps.backward_passes
        aucs = []
        for insertion in (False, True):
            curve_call = call_on(model)
            result = curves.perturbation_curve(
                curve_call, pixels, baselines, maps.values, targets, config.steps, insertion=insertion
            )
            counter.add(curve_call)
            aucs.append(result.auc)
        pointing, mass, regions = _localisation(maps.values, images.masks, config)
        similarity, reasons = [], []
        for other in compared:
            other_maps = explain(other.model, method_config(name), pixels, targets, token, settings)
            counter.forward += other_maps.forward_passes
            counter.backward += other_maps.backward_passes
            per_image = map_similarity(other_maps.values, maps.values, config.top_k_percent)
            similarity.append(
                Similarity(
                    other.version,
                    other.relation,
                    float(per_image.spearman.mean()),
                    float(per_image.ssim.mean()),
                    float(per_image.top_k_overlap.mean()),
                )
            )
            before = _localisation(other_maps.values, images.masks, config)
            reasons += _compare(config, other, name, (pointing, mass), before[:2], aucs, similarity[-1])
        reasons += _regions(config, regions)
        checks.append(
            MethodCheck(
                name,
                pointing,
                mass,
                regions,
                aucs[0],
                aucs[1],
                tuple(similarity),
                DRIFT if reasons else PASS,
                tuple(reasons),
            )
        )
    agreements, notes = [], list(notes)
    for other in compared:
        agreement = prediction_agreement(other_logits[other.version], logits)
        agreements.append(Agreement(other.version, other.relation, agreement))
        if agreement < config.thresholds.min_prediction_agreement:
            notes.append(
                f"prediction agreement with version {other.version} ({other.relation}) is {agreement:.3f} "
                f"< {config.thresholds.min_prediction_agreement}"
            )
    return ExplanationRecord(
        model=model.name,
        version=model.version,
        time=time.time(),
        reference_set=config.reference_set,
        trigger=trigger,
        images=len(images),
        methods=tuple(checks),
        agreements=tuple(agreements),
        reasons=tuple(notes),
        budget_forward_passes=budget.forward_rows + budget.backward_rows,
        forward_passes=counter.forward,
        backward_passes=counter.backward,
        seconds=time.perf_counter() - started,
        check_id=uuid.uuid4().hex,
    )


def _compare(
    config: ExplanationMonitoring,
    other: Compared,
    method: str,
    now: tuple[float | None, float | None],
    before: tuple[float | None, float | None],
    aucs: list[float],
    similarity: Similarity,
) -> list[str]:
    """The reasons this method drifted from `other` (empty: it did not)."""
    limits, against = config.thresholds, f"version {other.version} ({other.relation})"
    reasons = [
        f"{label} vs {against} is {value:.3f} < {limit}"
        for label, value, limit in (
            ("Spearman", similarity.spearman, limits.min_spearman),
            ("SSIM", similarity.ssim, limits.min_ssim),
            ("top-k overlap", similarity.top_k_overlap, limits.min_top_k_overlap),
        )
        if value < limit
    ]
    for label, value, old, limit in (
        ("pointing game", now[0], before[0], limits.max_pointing_game_drop),
        ("relevance mass", now[1], before[1], limits.max_relevance_mass_drop),
    ):
        if value is not None and old is not None and old - value > limit:
            reasons.append(f"{label} fell from {old:.3f} ({against}) to {value:.3f}, more than {limit}")
    old_check = next((m for m in other.record.methods if m.method == method), None) if other.record else None
    if old_check is not None:
        if aucs[0] - old_check.deletion_auc > limits.max_deletion_auc_rise:
            reasons.append(
                f"deletion AUC rose from {old_check.deletion_auc:.3f} ({against}) to {aucs[0]:.3f}, "
                f"more than {limits.max_deletion_auc_rise}"
            )
        if old_check.insertion_auc - aucs[1] > limits.max_insertion_auc_drop:
            reasons.append(
                f"insertion AUC fell from {old_check.insertion_auc:.3f} ({against}) to {aucs[1]:.3f}, "
                f"more than {limits.max_insertion_auc_drop}"
            )
    return reasons


def _regions(config: ExplanationMonitoring, regions: tuple[RegionMass, ...]) -> list[str]:
    limit = config.thresholds.max_region_mass_ratio
    return [
        f"{r.mass:.3f} of the relevance lies in {r.region!r}, {r.mass / r.area_fraction:.1f}× its area share "
        f"{r.area_fraction:.3f} (limit {limit}×)"
        for r in regions
        if r.area_fraction > 0 and r.mass / r.area_fraction > limit
    ]
