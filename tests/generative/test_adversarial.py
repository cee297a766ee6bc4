"""Targeted adversarial image jobs on the demo model: from a correctly classified image, the result is
classified as the chosen class by Predict (asked independently) with ‖δ‖∞ ≤ ε."""

from __future__ import annotations

import pytest
from glassbox.demo.shapes import CLASSES
from glassbox_client._generated.glassbox.v1 import generative_pb2 as gen
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import model_service_pb2, model_service_pb2_grpc
from support.generative_harness import IMAGES, MODEL, image_proto, run_job, tensor_of

EPSILON = 8 / 255
FLOAT32_SLACK = 1e-6


def predict_top(server, pixels) -> model_service_pb2.ClassScore:
    stub = model_service_pb2_grpc.ModelServiceStub(server.channel)
    response = stub.Predict(
        model_service_pb2.PredictRequest(model=MODEL, images=[image_proto(pixels)], top_k=1)
    )
    return response.predictions[0].classes[0]


@pytest.mark.parametrize(("source", "target"), [("circle", "star"), ("triangle", "ring")])
def test_the_image_is_turned_into_the_chosen_class_within_epsilon(server, source: str, target: str) -> None:
    index = next(i for i, label in enumerate(IMAGES.labels.tolist()) if CLASSES[label] == source)
    original = IMAGES.images[index]
    assert predict_top(server, original).label == source
    spec = gen.AdversarialImageSpec(
        model=MODEL,
        seed=1,
        image=image_proto(original),
        target=gen.ClassRef(label=target),
        epsilon=EPSILON,
        steps=30,
    )
    job = run_job(server.channel, adversarial_image=spec).job
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error.message
    result = job.adversarial_image

    adversarial = tensor_of(result.image.pixels)
    perturbation = tensor_of(result.perturbation)
    assert float((adversarial - original - perturbation).abs().max()) <= FLOAT32_SLACK
    assert float(perturbation.abs().max()) <= EPSILON + FLOAT32_SLACK
    assert result.linf_norm <= EPSILON + FLOAT32_SLACK
    assert float(adversarial.min()) >= 0.0 and float(adversarial.max()) <= 1.0
    top = predict_top(server, adversarial)
    assert top.label == target and result.reached_target
    assert result.adversarial_prediction.label == target
    assert result.original_prediction.label == source
    assert result.target.probability == pytest.approx(top.probability, rel=1e-4)
