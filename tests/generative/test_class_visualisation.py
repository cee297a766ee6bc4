"""Class model visualisation jobs (Simonyan et al. 2014) on the demo model: the class's score rises
until the model, asked independently through Predict, sees the class in the image."""

from __future__ import annotations

import pytest
from glassbox_client._generated.glassbox.v1 import generative_pb2 as gen
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import model_service_pb2, model_service_pb2_grpc
from support.generative_harness import MODEL, image_proto, run_job, tensor_of

STEPS = 48


@pytest.mark.parametrize("target", [gen.ClassRef(label="star"), gen.ClassRef(index=2)])
def test_the_model_sees_the_class_in_its_visualisation(server, target: gen.ClassRef) -> None:
    """Raising a class's pre-softmax score does not by itself make it the top class: with the shipped
    weights, 48 steps on "square" raise the cross's score further (the two share straight edges and right
    angles), while the other five classes come out on top; the test names one by label, one by index."""
    spec = gen.ClassVisualisationSpec(model=MODEL, seed=0, target=target, steps=STEPS)
    watched = run_job(server.channel, class_visualisation=spec)
    job = watched.job
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error.message
    assert job.progress.step == job.progress.total == STEPS
    result = job.class_visualisation
    expected = 4 if target.HasField("label") else 2
    assert result.class_index == expected and result.label == ("star" if expected == 4 else "triangle")
    assert result.final_logit > result.initial_logit + 2.0

    pixels = tensor_of(result.image.pixels)
    assert pixels.shape == (3, 64, 64)
    predict = model_service_pb2_grpc.ModelServiceStub(server.channel).Predict(
        model_service_pb2.PredictRequest(model=MODEL, images=[image_proto(pixels)], top_k=1)
    )
    top = predict.predictions[0].classes[0]
    assert top.index == expected
    assert top.logit == pytest.approx(result.final_logit, rel=1e-4)
    assert top.probability == pytest.approx(result.final_probability, rel=1e-4)
