"""Jobs are validated and run with the operator's settings, not the embedded defaults: the pixel limit
(`limits.max_image_pixels`), the attribution caps (`attribution.max_samples`) and the per-kind caps
(`jobs.limits.*`), on the server at SubmitJob and in the process that runs the job (`glassbox worker`
validates again with its own settings)."""

from __future__ import annotations

import io
from collections.abc import Callable

import grpc
import pytest
from glassbox.config import Settings, load_settings
from glassbox.core.cancellation import CancellationToken
from glassbox.jobs.engine import run_attempt
from glassbox.jobs.kinds import JobContext, JobKinds
from glassbox.jobs.records import JobRecord, JobState
from glassbox.wire.kinds import job_kinds
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as attribution_pb2
from glassbox_client._generated.glassbox.v1 import datasets_pb2, job_service_pb2_grpc, tensor_pb2
from glassbox_client._generated.glassbox.v1 import evaluation_pb2 as ev
from glassbox_client._generated.glassbox.v1 import generative_pb2 as gen
from glassbox_client._generated.glassbox.v1 import inspection_pb2 as insp
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import robustness_pb2 as rob
from PIL import Image
from support.servers import RunningServer

OPERATOR = {
    "limits": {"max_image_pixels": 4096},
    "attribution": {"max_samples": 8},
    "jobs": {
        "limits": {
            "generative": {"max_steps": 5, "max_objective_depth": 1},
            "robustness": {"max_attacks": 1, "max_steps": 3},
            "inspection": {"max_top_examples": 2},
            "evaluation": {"max_methods": 1, "max_images": 3},
        }
    },
}
NAMED = datasets_pb2.ImageSet(named="shapes-val", limit=4)


def _png(side: int) -> tensor_pb2.Image:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (120, 40, 200)).save(buffer, "PNG")
    return tensor_pb2.Image(encoded=buffer.getvalue())


def _channel() -> gen.Objective:
    return gen.Objective(channel=gen.ChannelObjective(layer="features.10", channel=0))


@pytest.fixture(scope="module")
def operated(start_server: Callable[..., RunningServer]) -> RunningServer:
    return start_server(**OPERATOR)


def _refusal(server: RunningServer, **spec: object) -> grpc.RpcError:
    stub = job_service_pb2_grpc.JobServiceStub(server.channel)
    with pytest.raises(grpc.RpcError) as error:
        stub.SubmitJob(pb.SubmitJobRequest(**spec), timeout=60)
    return error.value


CASES = [
    (
        {"deepdream": gen.DeepDreamSpec(model="shapes", image=_png(65), objective=_channel())},
        "deepdream.image.encoded: image is 65x65 = 4225 pixels, over the limit of 4096",
    ),
    (
        {
            "feature_visualisation": gen.FeatureVisualisationSpec(
                model="shapes", objective=_channel(), steps=6
            )
        },
        "feature_visualisation.steps: must be in [1, 5], got 6",
    ),
    (
        {
            "feature_visualisation": gen.FeatureVisualisationSpec(
                model="shapes",
                objective=gen.Objective(
                    sum=gen.WeightedSumObjective(
                        terms=[
                            gen.WeightedObjective(
                                objective=gen.Objective(
                                    sum=gen.WeightedSumObjective(
                                        terms=[gen.WeightedObjective(objective=_channel())]
                                    )
                                )
                            )
                        ]
                    )
                ),
            )
        },
        "objectives nest deeper than 1 levels",
    ),
    (
        {
            "robustness_evaluation": rob.RobustnessEvaluationSpec(
                model="shapes",
                images=NAMED,
                attacks=[rob.Attack(method=rob.ATTACK_METHOD_FGSM, epsilons=[0.01])] * 2,
            )
        },
        "robustness_evaluation.attacks: at most 1 attacks",
    ),
    (
        {
            "top_activating": insp.TopActivatingSpec(
                model="shapes", images=NAMED, layer="features.10", count=3
            )
        },
        "top_activating.count: must be in [1, 2], got 3",
    ),
    (
        {
            "explanation_evaluation": ev.ExplanationEvaluationSpec(
                model="shapes",
                images=NAMED,
                methods=[ev.EvaluatedMethod(smoothgrad=attribution_pb2.SmoothGradParams(samples=16))],
            )
        },
        "explanation_evaluation.images: 4 images is over the limit of 3",
    ),
    (
        {
            "explanation_evaluation": ev.ExplanationEvaluationSpec(
                model="shapes",
                images=datasets_pb2.ImageSet(named="shapes-val", limit=2),
                methods=[ev.EvaluatedMethod(smoothgrad=attribution_pb2.SmoothGradParams(samples=16))],
            )
        },
        "explanation_evaluation.methods[0].smoothgrad.samples",
    ),
]


@pytest.mark.parametrize(
    "spec, expected", CASES, ids=[next(iter(c[0]), "none") + str(i) for i, c in enumerate(CASES)]
)
def test_submit_checks_the_operators_limits(operated: RunningServer, spec: dict, expected: str) -> None:
    error = _refusal(operated, **spec)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert expected in error.details(), error.details()


def test_the_same_specs_pass_with_the_embedded_defaults(server: RunningServer) -> None:
    """The refusals above come from the operator's settings: the default server queues these jobs."""
    stub = job_service_pb2_grpc.JobServiceStub(server.channel)
    for spec in (
        {"deepdream": CASES[0][0]["deepdream"]},
        {"feature_visualisation": CASES[1][0]["feature_visualisation"]},
    ):
        job = stub.SubmitJob(pb.SubmitJobRequest(**spec), timeout=60).job
        stub.CancelJob(pb.CancelJobRequest(job_id=job.id), timeout=30)


def test_the_process_running_a_job_validates_it_with_its_own_settings(operated: RunningServer) -> None:
    """What `glassbox worker` does with a job another server queued: validate again with the worker's
    settings (here the operator's), so a worker never runs past its own limits."""
    spec = gen.FeatureVisualisationSpec(model="shapes", objective=_channel(), steps=6)
    record = JobRecord(
        id="j1",
        kind="feature_visualisation",
        model="shapes",
        seed=1,
        state=JobState.RUNNING,
        created_at=0.0,
        max_attempts=1,
        attempt=1,
    )
    worker_settings: Settings = load_settings(**OPERATOR)
    repository = operated.server.context.repository
    context = JobContext(
        job_id="j1",
        repository=repository,
        settings=worker_settings,
        device=repository.device,
        token=CancellationToken(),
        seed=1,
        attempt=1,
        publish=lambda _progress, _png: None,
    )
    outcome = run_attempt(JobKinds(job_kinds()), record, spec.SerializeToString(), context)
    assert outcome.state is JobState.FAILED
    assert outcome.error is not None and "must be in [1, 5], got 6" in outcome.error.message
