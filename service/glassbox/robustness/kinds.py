"""The `robustness_evaluation` job kind, registered with the job engine at import
(`jobs.kinds.KIND_MODULES`): validate = `convert.evaluation` (runs before anything is queued), run =
`evaluate.evaluate` with the job's seed, token and progress, then the report as a result message."""

from __future__ import annotations

from glassbox_client._generated.glassbox.v1 import robustness_pb2 as pb

from glassbox.config import Settings
from glassbox.core.call import CallContext
from glassbox.jobs.kinds import JobContext, JobKind, register
from glassbox.models.repository import ModelRepository
from glassbox.robustness import convert
from glassbox.robustness.evaluate import evaluate
from glassbox.robustness.spec import RobustnessEvaluation
from glassbox.serving.execution import SCHEDULED

KIND = "robustness_evaluation"


def validate_robustness_evaluation(
    spec: pb.RobustnessEvaluationSpec, repository: ModelRepository, settings: Settings
) -> RobustnessEvaluation:
    return convert.evaluation(spec, repository, settings)


def run_robustness_evaluation(job: RobustnessEvaluation, ctx: JobContext) -> pb.RobustnessEvaluationResult:
    call = CallContext(job.model, ctx.token, ctx.settings.attribution, compute=SCHEDULED)
    report = evaluate(
        job,
        call,
        seed=ctx.seed,
        progress=lambda step, total, message: ctx.report(step, total, message=message),
    )
    return convert.result(report, job.model.labels)


register(
    JobKind(
        name=KIND,
        spec_type=pb.RobustnessEvaluationSpec,
        result_type=pb.RobustnessEvaluationResult,
        validate=validate_robustness_evaluation,
        run=run_robustness_evaluation,
    )
)
