"""Bad explanation_evaluation specs are refused at SubmitJob, before anything is queued, with
INVALID_ARGUMENT (FAILED_PRECONDITION / NOT_FOUND where that is the cause) naming the field; the server
serves on: a good job submitted afterwards succeeds."""

from __future__ import annotations

import grpc
import pytest
from glassbox.demo.shapes import generate
from glassbox.wire.kinds import job_kinds
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as attribution_pb2
from glassbox_client._generated.glassbox.v1 import datasets_pb2, job_service_pb2_grpc, tensor_pb2
from glassbox_client._generated.glassbox.v1 import evaluation_pb2 as ev
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb

SHAPES = generate(2, seed=5)
NAMED = datasets_pb2.ImageSet(named="shapes-val", limit=4)
GRAD_CAM = ev.EvaluatedMethod(grad_cam=attribution_pb2.GradCamParams())


def pixels(image) -> tensor_pb2.Image:
    array = image.numpy().astype("<f4")
    return tensor_pb2.Image(
        pixels=tensor_pb2.Tensor(
            dtype=tensor_pb2.DATA_TYPE_FLOAT32, shape=list(array.shape), data=array.tobytes()
        )
    )


UNMASKED = datasets_pb2.ImageSet(
    inline=datasets_pb2.InlineImageSet(images=[pixels(i) for i in SHAPES.images])
)


def spec(**fields: object) -> ev.ExplanationEvaluationSpec:
    values: dict[str, object] = {"model": "shapes", "images": NAMED, "methods": [GRAD_CAM]}
    values.update(fields)
    return ev.ExplanationEvaluationSpec(**values)


BAD = [
    (spec(methods=[]), "explanation_evaluation.methods"),
    (spec(methods=[ev.EvaluatedMethod()]), "explanation_evaluation.methods[0]"),
    (
        spec(methods=[GRAD_CAM, ev.EvaluatedMethod(smoothgrad=attribution_pb2.SmoothGradParams(samples=0))]),
        "explanation_evaluation.methods[1].smoothgrad.samples",
    ),
    (
        spec(methods=[ev.EvaluatedMethod(grad_cam=attribution_pb2.GradCamParams(layer="features.99"))]),
        "explanation_evaluation.methods[0].grad_cam.layer",
    ),
    (
        spec(methods=[ev.EvaluatedMethod(aggregation=attribution_pb2.AGGREGATION_NONE, grad_cam={})]),
        "explanation_evaluation.methods[0].aggregation",
    ),
    (
        spec(methods=[GRAD_CAM, ev.EvaluatedMethod(rise=attribution_pb2.RiseParams(masks=0))]),
        "explanation_evaluation.methods[1].rise.masks",
    ),
    (
        spec(methods=[ev.EvaluatedMethod(xrai=attribution_pb2.XraiParams(area_threshold=2.0))]),
        "explanation_evaluation.methods[0].xrai.area_threshold",
    ),
    (spec(methods=[GRAD_CAM, GRAD_CAM]), "explanation_evaluation.methods[1].name"),
    (spec(images=None), "explanation_evaluation.images"),
    (
        spec(images=datasets_pb2.ImageSet(inline=datasets_pb2.InlineImageSet())),
        "explanation_evaluation.images.inline.images",
    ),
    (spec(images=datasets_pb2.ImageSet(named="shapes-val", limit=-1)), "explanation_evaluation.images.limit"),
    (spec(images=UNMASKED, metrics=[ev.EVALUATION_METRIC_POINTING_GAME]), "explanation_evaluation.images"),
    (spec(images=UNMASKED, target=ev.EVALUATION_TARGET_LABEL), "explanation_evaluation.images"),
    (
        spec(metrics=[ev.EVALUATION_METRIC_ROAD, ev.EVALUATION_METRIC_ROAD]),
        "explanation_evaluation.metrics[1]",
    ),
    (spec(metrics=[ev.EVALUATION_METRIC_UNSPECIFIED]), "explanation_evaluation.metrics[0]"),
    (spec(target=7), "explanation_evaluation.target"),
    (spec(faithfulness=ev.FaithfulnessOptions(steps=1)), "explanation_evaluation.faithfulness.steps"),
    (spec(faithfulness=ev.FaithfulnessOptions(steps=10_000)), "explanation_evaluation.faithfulness.steps"),
    (
        spec(faithfulness=ev.FaithfulnessOptions(blur_sigma=0.0)),
        "explanation_evaluation.faithfulness.blur_sigma",
    ),
    (spec(faithfulness=ev.FaithfulnessOptions(baseline=9)), "explanation_evaluation.faithfulness.baseline"),
    (spec(road=ev.RoadOptions(fractions=[0.5, 0.3])), "explanation_evaluation.road.fractions[1]"),
    (spec(road=ev.RoadOptions(fractions=[1.0])), "explanation_evaluation.road.fractions[0]"),
    (spec(road=ev.RoadOptions(noise=float("nan"))), "explanation_evaluation.road.noise"),
    (
        spec(localisation=ev.LocalisationOptions(regions=[ev.ImageRegion(name="p", height=70, width=4)])),
        "explanation_evaluation.localisation.regions[0].height",
    ),
    (
        spec(localisation=ev.LocalisationOptions(regions=[ev.ImageRegion(height=4, width=4)])),
        "explanation_evaluation.localisation.regions[0].name",
    ),
    (spec(randomisation=ev.RandomisationOptions(images=0)), "explanation_evaluation.randomisation.images"),
    (spec(sensitivity=ev.SensitivityOptions(radius=0.9)), "explanation_evaluation.sensitivity.radius"),
    (spec(example_images=9), "explanation_evaluation.example_images"),
]


@pytest.fixture(scope="module")
def stub(server) -> job_service_pb2_grpc.JobServiceStub:
    return job_service_pb2_grpc.JobServiceStub(server.channel)


def submit_error(stub, evaluation: ev.ExplanationEvaluationSpec) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        stub.SubmitJob(pb.SubmitJobRequest(explanation_evaluation=evaluation), timeout=30)
    return caught.value


def test_the_kind_is_registered() -> None:
    assert "explanation_evaluation" in {kind.name for kind in job_kinds()}


@pytest.mark.parametrize(("evaluation", "field"), BAD, ids=[field for _, field in BAD])
def test_a_bad_spec_is_refused_naming_the_field(stub, evaluation, field: str) -> None:
    error = submit_error(stub, evaluation)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().startswith(field), error.details()


def test_missing_models_and_sets_and_gradient_free_models(stub) -> None:
    assert submit_error(stub, spec(model="nope")).code() == grpc.StatusCode.NOT_FOUND
    unknown_set = submit_error(stub, spec(images=datasets_pb2.ImageSet(named="nope")))
    assert unknown_set.code() == grpc.StatusCode.NOT_FOUND
    assert "explanation_evaluation.images.named" in unknown_set.details()
    onnx = submit_error(stub, spec(model="shapes-onnx"))
    assert onnx.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "explanation_evaluation.model" in onnx.details()


def test_nothing_was_queued_and_the_server_serves_on(stub) -> None:
    assert not [job for job in stub.ListJobs(pb.ListJobsRequest(kind="explanation_evaluation")).jobs]
    good = spec(
        images=datasets_pb2.ImageSet(
            inline=datasets_pb2.InlineImageSet(
                images=[pixels(i) for i in SHAPES.images],
                labels=[int(label) for label in SHAPES.labels],
                masks=[pixels(mask.float().expand(3, -1, -1)) for mask in SHAPES.masks],
            )
        ),
        metrics=[ev.EVALUATION_METRIC_POINTING_GAME, ev.EVALUATION_METRIC_SPARSENESS],
        target=ev.EVALUATION_TARGET_LABEL,
    )
    job = stub.SubmitJob(pb.SubmitJobRequest(explanation_evaluation=good), timeout=30).job
    final = list(stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=60))[-1].job
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error.message
    (method,) = final.explanation_evaluation.methods
    assert method.localisation[0].region == "object" and method.HasField("sparseness")
    assert not method.HasField("deletion") and not method.randomisation.cascading
