"""The `explanation_evaluation` job kind (`KINDS`, registered by the composition root through
`wire.kinds`): `wire.evaluation.evaluation_job` checks the spec before anything is queued, `run`
evaluates, and `evaluation_result` makes the typed result with the JSON report and the report PNG.
Every random draw comes from CPU generators seeded from the job's seed (one per metric,
`evaluate.metric_generator`), so a seed gives the same report on any device, whatever other methods
the job lists."""

from __future__ import annotations

from typing import Any

from glassbox_client._generated.glassbox.v1 import evaluation_pb2 as pb

from glassbox.evaluation.evaluate import evaluate
from glassbox.evaluation.figure import report_png
from glassbox.evaluation.report import Curve, EvaluationReport, MethodReport
from glassbox.evaluation.spec import EvaluationJob
from glassbox.jobs.kinds import JobContext, JobKind
from glassbox.wire.evaluation import evaluation_job
from glassbox.wire.jobs import proto_kind


def run_explanation_evaluation(job: EvaluationJob, ctx: JobContext) -> EvaluationReport:
    return evaluate(
        job,
        ctx.token,
        ctx.seed,
        lambda step, total, message: ctx.report(step, total, message=message),
    )


def evaluation_result(_job: EvaluationJob, report: EvaluationReport) -> pb.ExplanationEvaluationResult:
    """The wire result of a report."""
    return pb.ExplanationEvaluationResult(
        model=report.model,
        version=report.version,
        images=report.images,
        methods=[_method(method) for method in report.methods],
        random_reference=_method(report.random_reference),
        report_json=report.to_json(),
        report_png=report_png(report),
    )


def _curve(curve: Curve | None) -> pb.Curve | None:
    return None if curve is None else pb.Curve(x=curve.x, y=curve.y, auc=curve.auc)


def _method(method: MethodReport) -> pb.MethodEvaluation:
    message = pb.MethodEvaluation(
        name=method.name,
        method=method.method,
        deletion=_curve(method.deletion),
        insertion=_curve(method.insertion),
        road=_curve(method.road),
        localisation=[
            pb.RegionScore(
                region=score.region,
                pointing_hit_rate=score.pointing_hit_rate,
                relevance_mass=score.relevance_mass,
                area_fraction=score.area_fraction,
            )
            for score in method.localisation
        ],
        max_sensitivity=method.max_sensitivity,
        sparseness=method.sparseness,
        checks=[pb.EvaluationCheck(name=c.name, passed=c.passed, detail=c.detail) for c in method.checks],
        verdict=method.verdict,
        costs=[
            pb.MetricCost(
                metric=cost.metric,
                budget_forward_passes=cost.budget_forward_passes,
                forward_passes=cost.forward_passes,
                backward_passes=cost.backward_passes,
                seconds=cost.seconds,
            )
            for cost in method.costs
        ],
    )
    if method.randomisation is not None:
        for steps, target in (
            (method.randomisation.cascading, message.randomisation.cascading),
            (method.randomisation.independent, message.randomisation.independent),
        ):
            target.extend(
                pb.RandomisationStep(layer=s.layer, spearman=s.spearman, ssim=s.ssim) for s in steps
            )
    return message


KINDS: tuple[JobKind[Any, Any], ...] = (
    proto_kind(
        "explanation_evaluation",
        pb.ExplanationEvaluationSpec,
        evaluation_job,
        run_explanation_evaluation,
        evaluation_result,
    ),
)
