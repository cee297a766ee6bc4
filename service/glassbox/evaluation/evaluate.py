"""Runs an evaluation job: every method's maps of the set, then each asked-for metric, for the random
reference map and for every method, in a fixed order so a seed gives the same report.

A method's scores never depend on the other methods of the job: every metric that draws random numbers
(ROAD's imputation noise, the randomised weights, max-sensitivity's input noise) draws them from a
generator of its own, seeded from the job's seed and the metric's name alone and started afresh for
each method. So every method is measured on the same randomised networks and the same noise, and one
method alone scores exactly what it scores in a list. (Drawing them from one generator shared by the
whole job made each method's randomised weights depend on how many numbers the methods before it used.)

Before each metric runs, the job's progress message states its forward-pass budget (perturbation metrics
know theirs exactly; metrics that recompute maps estimate theirs from what the method's maps of the set
cost); after it, the cost it really had is recorded in the report. Progress advances once per
(method, metric), so a watcher sees which method and metric the job is on.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import torch

from glassbox.core.call import CallContext
from glassbox.core.cancellation import CancellationToken
from glassbox.evaluation import complexity, curves, localisation, road
from glassbox.evaluation.explain import Maps, explain
from glassbox.evaluation.randomisation import parameterised_layers, randomised_models, spearman, ssim
from glassbox.evaluation.report import (
    OBJECT_REGION,
    EvaluationReport,
    Examples,
    MethodReport,
    MetricCost,
    Randomisation,
    RandomisationStep,
    RegionScore,
    curve,
    judge,
)
from glassbox.evaluation.sensitivity import max_sensitivity
from glassbox.evaluation.spec import LOCALISATION_METRICS, EvaluationJob, MethodConfig, Metric
from glassbox.methods.batching import evaluate_in_batches, inference_bytes_per_row
from glassbox.serving.execution import SCHEDULED

ProgressCallback = Callable[[int, int, str], None]
"""(step, total, message): called before and after every (method, metric)."""

RANDOM_REFERENCE = "random"
REFERENCE_METRICS = (Metric.DELETION, Metric.INSERTION, Metric.ROAD, *LOCALISATION_METRICS, Metric.SPARSENESS)
"""What the random reference map is measured on (randomising weights or inputs does not change it)."""


def metric_generator(seed: int, stream: str) -> torch.Generator:
    """A CPU generator for one random stream (a metric's name, or the reference map) of a job seeded `seed`.

    Example:
        >>> a, b = metric_generator(3, "road"), metric_generator(3, "road")
        >>> torch.equal(torch.rand(2, generator=a), torch.rand(2, generator=b))
        True
    """
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def _units(metrics: tuple[Metric, ...], among: tuple[Metric, ...] = tuple(Metric)) -> int:
    """Progress steps of `metrics` (those in `among`): one each, the localisation metrics one together."""
    chosen = [metric for metric in metrics if metric in among]
    together = sum(1 for metric in chosen if metric in LOCALISATION_METRICS)
    return len(chosen) - max(0, together - 1)


def logits_of(call: CallContext, images: torch.Tensor) -> torch.Tensor:
    """The model's logits [N, C] of `images`, in memory-budgeted forward batches counted by `call`."""
    rows = call.rows_per_batch(inference_bytes_per_row(call.model))
    return evaluate_in_batches(call, lambda start, stop: images[start:stop], images.shape[0], rows)


class _Run:
    def __init__(
        self,
        job: EvaluationJob,
        token: CancellationToken,
        seed: int,
        progress: ProgressCallback,
    ) -> None:
        self.job = job
        self.token = token
        self.seed = seed
        self.progress = progress
        self.count = job.images.shape[0]
        self.total = _units(job.metrics, REFERENCE_METRICS) + len(job.methods) * (1 + _units(job.metrics))
        self.step = 0
        self.targets = job.labels if job.use_labels and job.labels is not None else self._predicted()
        self.baselines = curves.baseline_images(
            job.images, job.faithfulness.baseline, job.faithfulness.blur_sigma
        )
        height, width = job.images.shape[-2:]
        tolerance = job.localisation.tolerance_pixels
        self.tolerance = localisation.paper_tolerance(height, width) if tolerance is None else tolerance
        self.regions: list[tuple[str, torch.Tensor]] = []
        if job.masks is not None:
            self.regions.append((OBJECT_REGION, job.masks))
        for region in job.localisation.regions:
            self.regions.append((region.name, region.mask(height, width).expand(self.count, height, width)))

    def _predicted(self) -> torch.Tensor:
        return logits_of(self._call(), self.job.images).argmax(dim=1)

    def _call(self) -> CallContext:
        return CallContext(self.job.model, self.token, self.job.settings.attribution, compute=SCHEDULED)

    def _unit(
        self, report: MethodReport, metric: str, budget: int, work: Callable[[CallContext], None]
    ) -> None:
        """Announce the budget, run `work` with a pass-counting call context, record its cost."""
        self.progress(self.step, self.total, f"{report.name} · {metric}: budget {budget} forward passes")
        call = self._call()
        started = time.perf_counter()
        work(call)
        cost = MetricCost(
            metric, budget, call.counter.forward, call.counter.backward, time.perf_counter() - started
        )
        report.costs.append(cost)
        self.step += 1
        self.progress(self.step, self.total, f"{report.name} · {metric}: done")

    def measure(self, report: MethodReport, maps: torch.Tensor, metrics: tuple[Metric, ...]) -> None:
        """The metrics that need only the maps and forward passes of the trained model."""
        job, images, targets = self.job, self.job.images, self.targets
        steps = job.faithfulness.steps
        for metric, insertion in ((Metric.DELETION, False), (Metric.INSERTION, True)):
            if metric in metrics:

                def run_curve(
                    call: CallContext, metric: Metric = metric, insertion: bool = insertion
                ) -> None:
                    result = curves.perturbation_curve(
                        call, images, self.baselines, maps, targets, steps, insertion=insertion
                    )
                    setattr(report, metric.value, curve(result.x, result.mean, result.auc))

                self._unit(report, metric.value, curves.forward_budget(self.count, steps), run_curve)
        if Metric.ROAD in metrics:

            def run_road(call: CallContext) -> None:
                generator = metric_generator(self.seed, Metric.ROAD.value)
                result = road.road_curve(
                    call, images, maps, targets, job.road.fractions, job.road.noise, generator
                )
                report.road = curve(result.x, result.mean, result.auc)

            self._unit(
                report, Metric.ROAD.value, road.forward_budget(self.count, len(job.road.fractions)), run_road
            )
        asked = [metric for metric in LOCALISATION_METRICS if metric in metrics]
        if asked and self.regions:

            def run_localisation(_call: CallContext) -> None:
                for name, masks in self.regions:
                    hits = localisation.pointing_hits(maps, masks, self.tolerance)
                    mass = localisation.relevance_mass(maps, masks)
                    report.localisation.append(
                        RegionScore(
                            name,
                            float(hits.float().mean()) if Metric.POINTING_GAME in asked else None,
                            float(mass.mean()) if Metric.RELEVANCE_MASS in asked else None,
                            float(localisation.area_fraction(masks).mean()),
                        )
                    )

            self._unit(report, "localisation", 0, run_localisation)
        if Metric.SPARSENESS in metrics:

            def run_sparseness(_call: CallContext) -> None:
                report.sparseness = float(complexity.gini(maps).mean())

            self._unit(report, Metric.SPARSENESS.value, 0, run_sparseness)

    def evaluate_method(self, config: MethodConfig) -> tuple[MethodReport, torch.Tensor]:
        job, model = self.job, self.job.model
        report = MethodReport(config.name, config.method)
        computed: list[Maps] = []

        def run_maps(call: CallContext) -> None:
            maps = explain(model, config, job.images, self.targets, self.token, job.settings)
            call.count(forward=maps.forward_passes, backward=maps.backward_passes)
            computed.append(maps)

        self._unit(report, "maps", 0, run_maps)
        maps = computed[0].values
        per_image = max(1, computed[0].forward_passes // self.count)
        self.measure(report, maps, job.metrics)
        if Metric.RANDOMISATION in job.metrics:
            subset = min(self.count, job.randomisation.images)
            layers = len(parameterised_layers(model.module.net))

            def run_randomisation(call: CallContext) -> None:
                report.randomisation = self._randomisation(config, maps[:subset], subset, call)

            budget = 2 * layers * subset * per_image
            self._unit(report, Metric.RANDOMISATION.value, budget, run_randomisation)
        if Metric.MAX_SENSITIVITY in job.metrics:
            options = job.sensitivity

            def run_sensitivity(call: CallContext) -> None:
                def explain_noisy(pixels: torch.Tensor) -> torch.Tensor:
                    noisy = explain(model, config, pixels, self.targets, self.token, job.settings)
                    call.count(forward=noisy.forward_passes, backward=noisy.backward_passes)
                    return noisy.values

                generator = metric_generator(self.seed, Metric.MAX_SENSITIVITY.value)
                values = max_sensitivity(
                    job.images, maps, explain_noisy, options.samples, options.radius, generator
                )
                report.max_sensitivity = float(values.mean())

            budget = options.samples * self.count * per_image
            self._unit(report, Metric.MAX_SENSITIVITY.value, budget, run_sensitivity)
        return report, maps

    def _randomisation(
        self, config: MethodConfig, original: torch.Tensor, subset: int, call: CallContext
    ) -> Randomisation:
        result = Randomisation()
        images, targets = self.job.images[:subset], self.targets[:subset]
        for cascading, steps in ((True, result.cascading), (False, result.independent)):
            generator = metric_generator(self.seed, f"{Metric.RANDOMISATION.value}:{cascading}")
            for layer, randomised in randomised_models(self.job.model, generator, cascading=cascading):
                maps = explain(randomised, config, images, targets, self.token, self.job.settings)
                call.count(forward=maps.forward_passes, backward=maps.backward_passes)
                steps.append(
                    RandomisationStep(
                        layer,
                        float(spearman(original, maps.values).mean()),
                        float(ssim(original, maps.values).mean()),
                    )
                )
        return result


def evaluate(
    job: EvaluationJob, token: CancellationToken, seed: int, progress: ProgressCallback
) -> EvaluationReport:
    """Measure every method of the job (and the random reference map) on the job's images; every random
    draw comes from `seed` (see the module docstring)."""
    run = _Run(job, token, seed, progress)
    height, width = job.images.shape[-2:]
    shown = min(job.example_images, run.count)
    examples = Examples(job.images[:shown])
    random_maps = torch.rand(run.count, height, width, generator=metric_generator(seed, RANDOM_REFERENCE))
    reference = MethodReport(RANDOM_REFERENCE, RANDOM_REFERENCE)
    run.measure(
        reference, random_maps, tuple(metric for metric in job.metrics if metric in REFERENCE_METRICS)
    )
    reports = []
    for config in job.methods:
        report, maps = run.evaluate_method(config)
        judge(report, reference, job.randomisation.similarity_threshold, job.sensitivity.threshold)
        examples.maps[config.name] = maps[:shown]
        reports.append(report)
    reference.verdict = f"{RANDOM_REFERENCE}: the reference every method is compared with"
    model = job.model
    return EvaluationReport(model.name, model.version, run.count, reports, reference, examples)
