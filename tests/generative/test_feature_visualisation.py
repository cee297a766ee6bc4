"""Feature visualisation jobs on the demo model, through the real JobService: the visualised unit's
activation multiplies, progress reaches its total with previews on the requested steps, results are
deterministic given the seed, and batches, diversity and the other objectives and options work."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from glassbox.backends.torch_backend import TorchModel
from glassbox.generative import parametrisations
from glassbox_client._generated.glassbox.v1 import generative_pb2 as gen
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from PIL import Image
from support.generative_harness import MODEL, layer_output, run_job, tensor_of

LAYER, CHANNEL = "features.14", 28  # a channel on at the starting noise: it must grow from there
STEPS = 48


@pytest.fixture(scope="module")
def model(server) -> TorchModel:
    return server.server.context.repository.get(MODEL)


def channel_spec(**fields: object) -> gen.FeatureVisualisationSpec:
    spec = gen.FeatureVisualisationSpec(
        model=MODEL,
        seed=3,
        steps=STEPS,
        objective=gen.Objective(channel=gen.ChannelObjective(layer=LAYER, channel=CHANNEL)),
    )
    for name, value in fields.items():
        if isinstance(
            value, gen.Objective | gen.ImageParametrisation | gen.Regularisers | gen.TransformSettings
        ):
            getattr(spec, name).CopyFrom(value)
        else:
            setattr(spec, name, value)
    return spec


def test_the_channel_activation_grows_at_least_fivefold_from_the_starting_noise(server, model) -> None:
    watched = run_job(server.channel, preview_every_steps=16, feature_visualisation=channel_spec())
    job = watched.job
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error.message
    result = job.feature_visualisation

    start = parametrisations.build(
        parametrisations.FOURIER_DECORRELATED,
        1,
        64,
        64,
        generator=torch.Generator().manual_seed(3),
        device=torch.device("cpu"),
    )
    with torch.no_grad():
        initial = float(layer_output(model, LAYER, start())[0, CHANNEL].mean())
    pixels = tensor_of(result.images[0].pixels)
    final = float(layer_output(model, LAYER, pixels[None])[0, CHANNEL].mean())
    assert result.initial_objective[0] == pytest.approx(initial, rel=1e-4)
    assert result.final_objective[0] == pytest.approx(final, rel=1e-4)
    assert initial > 0
    assert final >= 5 * initial

    assert pixels.shape == (3, 64, 64)
    assert float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0
    png = Image.open(io.BytesIO(result.images[0].png))
    assert png.size == (64, 64) and png.mode == "RGB"
    assert torch.allclose(
        torch.from_numpy(np.array(png)).permute(2, 0, 1) / 255.0, pixels, atol=0.5 / 255 + 1e-6
    )


def test_progress_reaches_the_total_with_previews_on_the_requested_steps(server) -> None:
    watched = run_job(server.channel, preview_every_steps=5, feature_visualisation=channel_spec(steps=12))
    job = watched.job
    assert job.state == pb.JOB_STATE_SUCCEEDED
    assert job.progress.step == job.progress.total == 12
    assert watched.steps == sorted(watched.steps) and watched.steps[-1] == 12
    assert [step for step, _ in watched.previews] == [5, 10]
    for _, png in watched.previews:
        assert Image.open(io.BytesIO(png)).size == (64, 64)


def test_the_same_seed_gives_the_same_images_and_another_seed_others(server) -> None:
    first, second, other = (
        run_job(server.channel, feature_visualisation=channel_spec(steps=6, seed=seed)).job
        for seed in (11, 11, 12)
    )
    pixels = [job.feature_visualisation.images[0].pixels.data for job in (first, second, other)]
    assert pixels[0] == pixels[1]
    assert pixels[0] != pixels[2]


def test_a_batch_with_a_diversity_term_gives_different_images(server) -> None:
    objective = gen.Objective(
        sum=gen.WeightedSumObjective(
            terms=[
                gen.WeightedObjective(
                    objective=gen.Objective(channel=gen.ChannelObjective(layer=LAYER, channel=CHANNEL))
                ),
                gen.WeightedObjective(
                    weight=2.0, objective=gen.Objective(diversity=gen.DiversityObjective(layer="features.6"))
                ),
            ]
        )
    )
    job = run_job(
        server.channel, feature_visualisation=channel_spec(objective=objective, batch=2, steps=24)
    ).job
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error.message
    result = job.feature_visualisation
    assert len(result.images) == len(result.initial_objective) == len(result.final_objective) == 2
    first, second = (tensor_of(image.pixels) for image in result.images)
    assert float((first - second).abs().mean()) > 0.02
    assert all(f > i for i, f in zip(result.initial_objective, result.final_objective, strict=True))


def test_a_neuron_by_position_with_pixels_priors_and_custom_transforms_rises(server, model) -> None:
    objective = gen.Objective(neuron=gen.NeuronObjective(layer=LAYER, channel=CHANNEL, y=2, x=5))
    spec = channel_spec(
        objective=objective,
        height=48,
        width=80,
        parametrisation=gen.ImageParametrisation(
            kind=gen.PARAMETRISATION_PIXEL, colour=gen.COLOUR_SPACE_RGB, init_sd=0.5
        ),
        regularisers=gen.Regularisers(
            total_variation_weight=0.1, l2_weight=0.1, blur_every=8, blur_sigma=0.5
        ),
        transforms=gen.TransformSettings(
            preset=gen.TRANSFORM_PRESET_CUSTOM, pad=4, jitter=2, scales=[1.0, 1.05]
        ),
        steps=24,
    )
    job = run_job(server.channel, feature_visualisation=spec).job
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error.message
    result = job.feature_visualisation
    pixels = tensor_of(result.images[0].pixels)
    assert pixels.shape == (3, 48, 80)
    # 48x80 is smaller than the 64x64 input in height, so the model sees it upsampled to 64x64.
    resized = torch.nn.functional.interpolate(
        pixels[None], size=(64, 64), mode="bilinear", align_corners=False
    )
    assert result.final_objective[0] == pytest.approx(
        float(layer_output(model, LAYER, resized)[0, CHANNEL, 2, 5]), rel=1e-4
    )
    assert result.final_objective[0] > result.initial_objective[0]


def test_a_class_logit_given_by_label_rises(server) -> None:
    objective = gen.Objective(logit=gen.LogitObjective(target=gen.ClassRef(label="star")))
    job = run_job(server.channel, feature_visualisation=channel_spec(objective=objective, steps=24)).job
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error.message
    result = job.feature_visualisation
    assert result.final_objective[0] > result.initial_objective[0] + 1.0
