"""The `robustness_evaluation` job kind (`KINDS`, registered by the composition root through
`wire.kinds`): validate = `wire.robustness.evaluation` (runs before anything is queued), run =
`evaluate.evaluate` with the job's seed, token and progress, result = the report as a result message.
`MONITORING_JOBS` is how the robustness monitor submits these jobs and reads their results."""

from __future__ import annotations

from typing import Any

from glassbox_client._generated.glassbox.v1 import robustness_pb2 as pb

from glassbox.config import Settings
from glassbox.core.call import CallContext
from glassbox.jobs.kinds import JobContext, JobKind
from glassbox.models.repository import ModelRepository
from glassbox.robustness.evaluate import evaluate
from glassbox.robustness.monitor import EvaluationJobs
from glassbox.robustness.report import RobustnessReport
from glassbox.robustness.spec import RobustnessEvaluation
from glassbox.serving.execution import SCHEDULED
from glassbox.wire import robustness as convert
from glassbox.wire.jobs import proto_kind

KIND = "robustness_evaluation"


def validate_robustness_evaluation(
    spec: pb.RobustnessEvaluationSpec, repository: ModelRepository, settings: Settings
) -> RobustnessEvaluation:
    return convert.evaluation(spec, repository, settings)


def run_robustness_evaluation(job: RobustnessEvaluation, ctx: JobContext) -> RobustnessReport:
    call = CallContext(job.model, ctx.token, ctx.settings.attribution, compute=SCHEDULED)
    return evaluate(
        job,
        call,
        seed=ctx.seed,
        progress=lambda step, total, message: ctx.report(step, total, message=message),
    )


def robustness_evaluation_result(
    job: RobustnessEvaluation, report: RobustnessReport
) -> pb.RobustnessEvaluationResult:
    return convert.result(report, job.model.labels)


KINDS: tuple[JobKind[Any, Any], ...] = (
    proto_kind(
        KIND,
        pb.RobustnessEvaluationSpec,
        validate_robustness_evaluation,
        run_robustness_evaluation,
        robustness_evaluation_result,
    ),
)

MONITORING_JOBS = EvaluationJobs(kind=KIND, spec=convert.scheduled_spec, record=convert.history_record)
