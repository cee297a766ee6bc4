"""The generative job kinds as the JobService sees them: all six registered; every bad spec refused
before anything is queued with INVALID_ARGUMENT (or FAILED_PRECONDITION / NOT_FOUND) naming the field,
the server serving on afterwards; a running job leaves attribution calls on the same model untouched;
and a running generative job cancelled ends CANCELLED."""

from __future__ import annotations

import time

import grpc
import pytest
from glassbox.wire.kinds import job_kinds
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as attribution_pb2
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc, job_service_pb2_grpc
from glassbox_client._generated.glassbox.v1 import generative_pb2 as gen
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from support.generative_harness import IMAGES, MODEL, ONNX_MODEL, image_proto, run_job, submit_error

IMAGE = image_proto(IMAGES.images[0])


def channel(layer: str = "features.10", index: int = 0) -> gen.Objective:
    return gen.Objective(channel=gen.ChannelObjective(layer=layer, channel=index))


def test_all_six_kinds_are_registered() -> None:
    assert {
        "class_visualisation",
        "feature_visualisation",
        "deepdream",
        "feature_inversion",
        "style_transfer",
        "adversarial_image",
    } <= {kind.name for kind in job_kinds()}


BAD_SPECS = [
    ("feature_visualisation", gen.FeatureVisualisationSpec(model=MODEL), "feature_visualisation.objective"),
    (
        "feature_visualisation",
        gen.FeatureVisualisationSpec(model=MODEL, objective=channel("features.99")),
        "feature_visualisation.objective.channel.layer",
    ),
    (
        "feature_visualisation",
        gen.FeatureVisualisationSpec(model=MODEL, objective=channel(index=64)),
        "feature_visualisation.objective.channel.channel",
    ),
    (
        "feature_visualisation",
        gen.FeatureVisualisationSpec(
            model=MODEL,
            objective=gen.Objective(
                sum=gen.WeightedSumObjective(
                    terms=[
                        gen.WeightedObjective(objective=channel()),
                        gen.WeightedObjective(objective=gen.Objective()),
                    ]
                )
            ),
        ),
        "feature_visualisation.objective.sum.terms[1].objective",
    ),
    (
        "feature_visualisation",
        gen.FeatureVisualisationSpec(
            model=MODEL,
            objective=gen.Objective(logit=gen.LogitObjective(target=gen.ClassRef(label="hexagon"))),
        ),
        "feature_visualisation.objective.logit.target.label",
    ),
    (
        "feature_visualisation",
        gen.FeatureVisualisationSpec(model=MODEL, objective=channel(), steps=0),
        "feature_visualisation.steps",
    ),
    (
        "feature_visualisation",
        gen.FeatureVisualisationSpec(model=MODEL, objective=channel(), batch=17),
        "feature_visualisation.batch",
    ),
    (
        "feature_visualisation",
        gen.FeatureVisualisationSpec(model=MODEL, objective=channel(), height=8),
        "feature_visualisation.height",
    ),
    (
        "feature_visualisation",
        gen.FeatureVisualisationSpec(model=MODEL, objective=channel(), learning_rate=-0.1),
        "feature_visualisation.learning_rate",
    ),
    (
        "feature_visualisation",
        gen.FeatureVisualisationSpec(
            model=MODEL,
            objective=channel(),
            transforms=gen.TransformSettings(preset=gen.TRANSFORM_PRESET_CUSTOM, scales=[9.0]),
        ),
        "feature_visualisation.transforms.scales[0]",
    ),
    (
        "feature_visualisation",
        gen.FeatureVisualisationSpec(
            model=MODEL, objective=channel(), regularisers=gen.Regularisers(total_variation_weight=-1.0)
        ),
        "feature_visualisation.regularisers.total_variation_weight",
    ),
    ("class_visualisation", gen.ClassVisualisationSpec(model=MODEL), "class_visualisation.target"),
    (
        "class_visualisation",
        gen.ClassVisualisationSpec(model=MODEL, target=gen.ClassRef(index=6)),
        "class_visualisation.target.index",
    ),
    ("deepdream", gen.DeepDreamSpec(model=MODEL, objective=channel()), "deepdream.image"),
    (
        "deepdream",
        gen.DeepDreamSpec(model=MODEL, image=IMAGE, objective=channel(), octaves=6),
        "deepdream.octaves",
    ),
    (
        "deepdream",
        gen.DeepDreamSpec(model=MODEL, image=IMAGE, objective=channel(), jitter=99),
        "deepdream.jitter",
    ),
    (
        "feature_inversion",
        gen.FeatureInversionSpec(model=MODEL, image=IMAGE, layer="nope"),
        "feature_inversion.layer",
    ),
    (
        "style_transfer",
        gen.StyleTransferSpec(
            model=MODEL, content_image=IMAGE, style_image=IMAGE, content_layer="features.10"
        ),
        "style_transfer.style_layers",
    ),
    (
        "style_transfer",
        gen.StyleTransferSpec(
            model=MODEL,
            content_image=IMAGE,
            style_image=IMAGE,
            content_layer="features.10",
            style_layers=["features.2", "classifier.1"],
        ),
        "style_transfer.style_layers[1]",
    ),
    (
        "style_transfer",
        gen.StyleTransferSpec(
            model=MODEL,
            content_image=IMAGE,
            style_image=IMAGE,
            content_layer="features.10",
            style_layers=["features.2"],
            style_layer_weights=[1.0, 2.0],
        ),
        "style_transfer.style_layer_weights",
    ),
    (
        "adversarial_image",
        gen.AdversarialImageSpec(model=MODEL, image=IMAGE, target=gen.ClassRef(label="star"), epsilon=0.0),
        "adversarial_image.epsilon",
    ),
    (
        "adversarial_image",
        gen.AdversarialImageSpec(model=MODEL, image=IMAGE, target=gen.ClassRef(label="star"), epsilon=2.0),
        "adversarial_image.epsilon",
    ),
    ("adversarial_image", gen.AdversarialImageSpec(model=MODEL, image=IMAGE), "adversarial_image.target"),
]


@pytest.mark.parametrize(("kind", "spec", "field"), BAD_SPECS, ids=[f"{k}:{f}" for k, _, f in BAD_SPECS])
def test_a_bad_spec_is_refused_naming_the_field(server, kind: str, spec: object, field: str) -> None:
    error = submit_error(server.channel, **{kind: spec})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.details()


def test_models_without_gradients_or_not_served_are_refused_and_the_server_serves_on(server) -> None:
    onnx = submit_error(
        server.channel,
        feature_visualisation=gen.FeatureVisualisationSpec(model=ONNX_MODEL, objective=channel()),
    )
    assert onnx.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "feature_visualisation.model" in onnx.details() and "onnxruntime" in onnx.details()
    missing = submit_error(server.channel, adversarial_image=gen.AdversarialImageSpec(model="no-such-model"))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    stub = job_service_pb2_grpc.JobServiceStub(server.channel)
    assert not stub.ListJobs(pb.ListJobsRequest(states=[pb.JOB_STATE_QUEUED])).jobs  # nothing was queued
    job = run_job(
        server.channel,
        feature_visualisation=gen.FeatureVisualisationSpec(model=MODEL, objective=channel(), steps=2),
    ).job
    assert job.state == pb.JOB_STATE_SUCCEEDED


def long_job(stub: job_service_pb2_grpc.JobServiceStub, layer: str = "features.10") -> str:
    """Submit a job far longer than any test and wait until it has taken a few steps; returns its id."""
    spec = gen.FeatureVisualisationSpec(model=MODEL, objective=channel(layer), steps=10_000)
    job = stub.SubmitJob(pb.SubmitJobRequest(feature_visualisation=spec)).job
    for update in stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=60):
        if update.job.progress.step >= 3:
            return job.id
    raise AssertionError("the job never ran")


def test_a_running_job_leaves_concurrent_attribution_calls_untouched(start_server) -> None:
    uncached = start_server(cache={"enabled": False})
    attribution = attribution_service_pb2_grpc.AttributionServiceStub(uncached.channel)

    def maps() -> list[bytes]:
        common = {
            "model": MODEL,
            "images": [IMAGE],
            "targets": attribution_pb2.TargetSpec(class_indices=[4]),
            "output": attribution_pb2.OutputOptions(map=True),
        }
        requests = [
            attribution_pb2.AttributeRequest(
                grad_cam=attribution_pb2.GradCamParams(layer="features.14"), **common
            ),
            attribution_pb2.AttributeRequest(
                guided_backprop=attribution_pb2.GuidedBackpropParams(), **common
            ),
            attribution_pb2.AttributeRequest(saliency=attribution_pb2.SaliencyParams(), **common),
        ]
        return [attribution.Attribute(r).images[0].attributions[0].map.data for r in requests]

    alone = maps()
    jobs = job_service_pb2_grpc.JobServiceStub(uncached.channel)
    job_id = long_job(jobs, layer="features.14")  # hooks the layer Grad-CAM reads
    try:
        during = [maps() for _ in range(3)]
        assert jobs.GetJob(pb.GetJobRequest(job_id=job_id)).job.state == pb.JOB_STATE_RUNNING
    finally:
        jobs.CancelJob(pb.CancelJobRequest(job_id=job_id))
    assert all(result == alone for result in during)


def test_a_running_generative_job_cancelled_ends_cancelled(server) -> None:
    stub = job_service_pb2_grpc.JobServiceStub(server.channel)
    job_id = long_job(stub)
    started = time.monotonic()
    stub.CancelJob(pb.CancelJobRequest(job_id=job_id))
    final = list(stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=60))[-1].job
    assert final.state == pb.JOB_STATE_CANCELLED
    assert final.progress.step < 10_000
    assert time.monotonic() - started < 10
