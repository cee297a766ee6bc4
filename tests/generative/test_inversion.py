"""Feature inversion jobs on the demo model: the reconstruction from noise has a representation within
0.3 relative error of the target image's at the layer (read independently)."""

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


def test_the_reconstructions_representation_is_within_three_tenths_of_the_targets(
    server, model: TorchModel
) -> None:
    target = IMAGES.images[1]
    spec = gen.FeatureInversionSpec(model=MODEL, seed=4, image=image_proto(target), layer=LAYER, steps=96)
    job = run_job(server.channel, feature_inversion=spec).job
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error.message
    assert job.progress.step == job.progress.total == 96
    result = job.feature_inversion

    reconstruction = tensor_of(result.image.pixels)
    wanted = layer_output(model, LAYER, target[None])
    got = layer_output(model, LAYER, reconstruction[None])
    relative_error = float((got - wanted).norm() / wanted.norm())
    assert relative_error == pytest.approx(result.final_relative_error, rel=1e-3)
    assert relative_error <= 0.3
    assert result.initial_relative_error > 2 * relative_error
