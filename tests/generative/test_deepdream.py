"""DeepDream jobs on the demo model: dreaming from a real image raises the chosen layer's norm (read
independently), over every octave, and the dream stays an image of the same size near the original."""

from __future__ import annotations

import pytest
from glassbox.backends.torch_backend import TorchModel
from glassbox_client._generated.glassbox.v1 import generative_pb2 as gen
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from support.generative_harness import IMAGES, MODEL, image_proto, layer_output, run_job, tensor_of

LAYER = "features.10"


@pytest.fixture(scope="module")
def model(server) -> TorchModel:
    return server.server.context.repository.get(MODEL)


def test_dreaming_raises_the_layers_norm_over_every_octave(server, model: TorchModel) -> None:
    original = IMAGES.images[0]
    spec = gen.DeepDreamSpec(
        model=MODEL,
        seed=2,
        image=image_proto(original),
        objective=gen.Objective(layer=gen.LayerObjective(layer=LAYER)),
        octaves=2,
        steps_per_octave=8,
    )
    watched = run_job(server.channel, deepdream=spec)
    job = watched.job
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error.message
    assert job.progress.step == job.progress.total == 16
    messages = {u.job.progress.message for u in watched.updates if u.job.state == pb.JOB_STATE_RUNNING}
    assert {"octave 1 of 2 (46x46)", "octave 2 of 2 (64x64)"} <= messages

    dreamed = tensor_of(job.deepdream.image.pixels)
    assert dreamed.shape == original.shape
    before = layer_output(model, LAYER, original[None]).norm()
    after = layer_output(model, LAYER, dreamed[None]).norm()
    assert after > 1.2 * before
    assert job.deepdream.final_objective > job.deepdream.initial_objective
    assert float((dreamed - original).abs().mean()) < 0.25
