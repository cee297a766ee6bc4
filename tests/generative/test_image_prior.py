"""The learned image prior: training is deterministic from the seed, the image_prior_training job stores
the prior beside the model version (progress, reconstruction previews, cancellation), class and feature
visualisation optimise under it through a real server, a missing prior is FAILED_PRECONDITION saying
how to train one, and bad input is INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import io
import json
import shutil
import tomllib
from pathlib import Path

import grpc
import pytest
import torch
from glassbox.cli import main as glassbox_cli
from glassbox.generative.image_prior import PRIORS_FOLDER, load_prior_file, save_prior
from glassbox.generative.optimise import StepSpan, TokenReporter
from glassbox.generative.prior_training import PriorTraining, train_prior
from glassbox_client._generated.glassbox.v1 import generative_pb2 as gen
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import (
    job_service_pb2_grpc,
    model_service_pb2,
    model_service_pb2_grpc,
)
from PIL import Image
from support.generative_harness import IMAGES, MODEL, image_proto, run_job, submit_error, tensor_of
from support.model_repository import copy_shipped_model
from support.paths import MODELS

SET = "shapes-val"
UNTRAINED = "shapes-shortcut"
"""A model whose version has no prior (the test repository's copy has none)."""
TRAINED_BY_JOB = "shapes-copy"
"""A copy of shapes the training-job test writes its prior into (the visualisations use shapes' own)."""

CPU = torch.device("cpu")


def small_training(steps: int = 4) -> PriorTraining:
    return PriorTraining(
        images=IMAGES.images,
        model=MODEL,
        version="1",
        image_set=SET,
        steps=steps,
        batch_size=4,
        latent_size=8,
    )


def train(seed: int, steps: int = 4) -> dict[str, torch.Tensor]:
    trained = train_prior(
        small_training(steps), seed=seed, device=CPU, progress=StepSpan(TokenReporter(), steps)
    )
    return trained.network.state_dict()


def test_training_is_deterministic_from_the_seed() -> None:
    first, again, other = train(seed=3), train(seed=3), train(seed=4)
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_latent_codes_stay_within_the_prior_and_assign_encodes() -> None:
    prior = load_prior_file(MODELS / MODEL / "1" / PRIORS_FOLDER / f"{SET}.safetensors", CPU)
    image = prior.image(3, 64, 64, init_sd=1.0, generator=torch.Generator().manual_seed(0), device=CPU)
    with torch.no_grad():
        image.latent.mul_(100.0)
    image.constrain()
    assert float(image.latent.detach().norm(dim=1).max()) <= prior.info.latent_radius * (1 + 1e-5)
    pixels = image().detach()
    assert pixels.shape == (3, 3, 64, 64) and float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0
    image.assign(IMAGES.images[:3])
    torch.testing.assert_close(image.latent.detach(), prior.encode(IMAGES.images[:3]))


def test_the_cli_trains_and_stores_a_prior(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy_shipped_model(tmp_path, UNTRAINED)
    command = ["prior", "train", "--model", UNTRAINED, "--repository", str(tmp_path), "--image-set"]
    assert glassbox_cli([*command, "nope"]) == 2
    assert "image_set: no named set 'nope'" in capsys.readouterr().err
    small = ["--steps", "2", "--batch-size", "4", "--latent-size", "4", "--seed", "9"]
    assert glassbox_cli([*command, SET, *small]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["path"] == f"{UNTRAINED}/1/{PRIORS_FOLDER}/{SET}.safetensors"
    info = load_prior_file(tmp_path / printed["path"], CPU).info
    assert (info.seed, info.steps, info.latent_size, info.images) == (9, 2, 4, 240)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped shapes and shapes-shortcut models and a copy of shapes (`TRAINED_BY_JOB`), without
    any stored prior, then a tiny prior (a few steps, latent size 8) for shapes' shapes-val set."""
    root = tmp_path_factory.mktemp("priors-repository")
    for name in (MODEL, UNTRAINED):
        copy_shipped_model(root, name)
    shutil.copytree(root / MODEL, root / TRAINED_BY_JOB)
    for priors in root.glob(f"*/*/{PRIORS_FOLDER}"):
        shutil.rmtree(priors)
    trained = train_prior(small_training(8), seed=0, device=CPU, progress=StepSpan(TokenReporter(), 8))
    save_prior(root / MODEL / "1", trained.network, trained.info)
    return root


@pytest.fixture(scope="module")
def prior_server(start_server, repository: Path):
    return start_server(model_repository=repository)


def latent(image_set: str = SET, **fields: object) -> gen.ImageParametrisation:
    return gen.ImageParametrisation(kind=gen.PARAMETRISATION_LATENT_PRIOR, latent_prior=image_set, **fields)


def test_the_training_job_stores_the_prior_with_progress_and_reconstruction_previews(
    prior_server, repository: Path
) -> None:
    spec = gen.ImagePriorTrainingSpec(
        model=TRAINED_BY_JOB, seed=5, image_set=SET, steps=12, batch_size=8, latent_size=8
    )
    watched = run_job(prior_server.channel, preview_every_steps=6, image_prior_training=spec)
    job = watched.job
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error_status.message
    assert watched.steps[-1] == job.progress.total == 12
    assert [step for step, _ in watched.previews] == [6, 12]
    preview = Image.open(io.BytesIO(watched.previews[0][1]))
    assert preview.size == (8 * 64, 2 * 64)  # eight images of the set above their reconstructions

    result = job.image_prior_training
    assert result.path == f"{TRAINED_BY_JOB}/1/{PRIORS_FOLDER}/{SET}.safetensors"
    assert (result.version, result.images, result.latent_size) == ("1", 240, 8)
    assert 0.0 < result.final_reconstruction_rmse < 1.0 and 0.0 < result.initial_reconstruction_rmse < 1.0
    assert tensor_of(result.reconstructions.pixels).shape == (3, 128, 512)
    stored = load_prior_file(repository / result.path, CPU)
    assert (
        stored.info.seed == 5
        and stored.info.steps == 12
        and stored.info.latent_radius == pytest.approx(result.latent_radius)
    )
    notes = tomllib.loads((repository / result.path).with_suffix(".toml").read_text())
    assert (notes["image_set"], notes["seed"], notes["steps"]) == (SET, 5, 12)
    assert notes["reconstruction_rmse"] == pytest.approx(result.final_reconstruction_rmse, rel=1e-5)


def test_class_visualisation_under_the_prior(prior_server) -> None:
    spec = gen.ClassVisualisationSpec(
        model=MODEL,
        seed=0,
        target=gen.ClassRef(label="star"),
        steps=16,
        learning_rate=0.1,
        parametrisation=latent(),
    )
    job = run_job(prior_server.channel, class_visualisation=spec).job
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error_status.message
    result = job.class_visualisation
    assert result.final_logit > result.initial_logit
    pixels = tensor_of(result.image.pixels)
    assert pixels.shape == (3, 64, 64) and float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0
    top = (
        model_service_pb2_grpc.ModelServiceStub(prior_server.channel)
        .Predict(model_service_pb2.PredictRequest(model=MODEL, images=[image_proto(pixels)], top_k=6))
        .predictions[0]
        .classes
    )
    star = next(score for score in top if score.label == "star")
    assert star.logit == pytest.approx(result.final_logit, rel=1e-4, abs=1e-4)


def test_feature_visualisation_under_the_prior(prior_server) -> None:
    spec = gen.FeatureVisualisationSpec(
        model=MODEL,
        seed=1,
        objective=gen.Objective(channel=gen.ChannelObjective(layer="features.10", channel=4)),
        steps=12,
        learning_rate=0.1,
        parametrisation=latent(),
    )
    job = run_job(prior_server.channel, feature_visualisation=spec).job
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error_status.message
    result = job.feature_visualisation
    assert result.final_objective[0] > result.initial_objective[0]
    assert tensor_of(result.images[0].pixels).shape == (3, 64, 64)


def test_a_cancelled_training_ends_cancelled_and_stores_nothing(prior_server, repository: Path) -> None:
    stub = job_service_pb2_grpc.JobServiceStub(prior_server.channel)
    spec = gen.ImagePriorTrainingSpec(model=UNTRAINED, image_set=SET, steps=10_000, batch_size=4)
    job = stub.SubmitJob(pb.SubmitJobRequest(image_prior_training=spec), timeout=30).job
    for update in stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=60):
        if update.job.progress.step >= 2:
            break
    stub.CancelJob(pb.CancelJobRequest(job_id=job.id), timeout=30)
    final = list(stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=60))[-1].job
    assert final.state == pb.JOB_STATE_CANCELLED and final.progress.step < 10_000
    assert not list((repository / UNTRAINED).glob(f"*/{PRIORS_FOLDER}/*"))


def test_a_missing_prior_is_failed_precondition_saying_how_to_train_one(prior_server) -> None:
    spec = gen.ClassVisualisationSpec(model=UNTRAINED, target=gen.ClassRef(index=0), parametrisation=latent())
    error = submit_error(prior_server.channel, class_visualisation=spec)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = error.details()
    assert "class_visualisation.parametrisation.latent_prior" in details
    assert f"glassbox prior train --model {UNTRAINED} --version 1 --image-set {SET}" in details
    assert "image_prior_training" in details


CHANNEL = gen.Objective(channel=gen.ChannelObjective(layer="features.10", channel=0))
BAD_SPECS = [
    (
        "class_visualisation",
        gen.ClassVisualisationSpec(
            model=MODEL, target=gen.ClassRef(index=0), parametrisation=latent("no-such-set")
        ),
        "class_visualisation.parametrisation.latent_prior",
    ),
    (
        "feature_visualisation",
        gen.FeatureVisualisationSpec(model=MODEL, objective=CHANNEL, parametrisation=latent("")),
        "feature_visualisation.parametrisation.latent_prior",
    ),
    (
        "class_visualisation",
        gen.ClassVisualisationSpec(
            model=MODEL, target=gen.ClassRef(index=0), height=32, parametrisation=latent()
        ),
        "class_visualisation.height",
    ),
    (
        "class_visualisation",
        gen.ClassVisualisationSpec(
            model=MODEL, target=gen.ClassRef(label="hexagon"), parametrisation=latent()
        ),
        "class_visualisation.target.label",
    ),
    (
        "feature_visualisation",
        gen.FeatureVisualisationSpec(
            model=MODEL,
            objective=gen.Objective(channel=gen.ChannelObjective(layer="features.10", channel=999)),
            parametrisation=latent(),
        ),
        "feature_visualisation.objective.channel.channel",
    ),
    (
        "feature_visualisation",
        gen.FeatureVisualisationSpec(
            model=MODEL, objective=CHANNEL, parametrisation=latent(colour=gen.COLOUR_SPACE_RGB)
        ),
        "feature_visualisation.parametrisation.colour",
    ),
    (
        "feature_inversion",
        gen.FeatureInversionSpec(
            model=MODEL, image=image_proto(IMAGES.images[0]), layer="features.10", parametrisation=latent()
        ),
        "feature_inversion.parametrisation.kind",
    ),
    (
        "class_visualisation",
        gen.ClassVisualisationSpec(
            model=MODEL,
            target=gen.ClassRef(index=0),
            parametrisation=gen.ImageParametrisation(kind=gen.PARAMETRISATION_PIXEL, latent_prior=SET),
        ),
        "class_visualisation.parametrisation.latent_prior",
    ),
    (
        "image_prior_training",
        gen.ImagePriorTrainingSpec(model=MODEL, image_set="nope"),
        "image_prior_training.image_set",
    ),
    ("image_prior_training", gen.ImagePriorTrainingSpec(model=MODEL), "image_prior_training.image_set"),
    (
        "image_prior_training",
        gen.ImagePriorTrainingSpec(model=MODEL, image_set=SET, steps=0),
        "image_prior_training.steps",
    ),
    (
        "image_prior_training",
        gen.ImagePriorTrainingSpec(model=MODEL, image_set=SET, steps=10_001),
        "image_prior_training.steps",
    ),
    (
        "image_prior_training",
        gen.ImagePriorTrainingSpec(model=MODEL, image_set=SET, batch_size=0),
        "image_prior_training.batch_size",
    ),
    (
        "image_prior_training",
        gen.ImagePriorTrainingSpec(model=MODEL, image_set=SET, latent_size=1),
        "image_prior_training.latent_size",
    ),
    (
        "image_prior_training",
        gen.ImagePriorTrainingSpec(model=MODEL, image_set=SET, kl_weight=-1.0),
        "image_prior_training.kl_weight",
    ),
    (
        "image_prior_training",
        gen.ImagePriorTrainingSpec(model=MODEL, image_set=SET, learning_rate=0.0),
        "image_prior_training.learning_rate",
    ),
]


@pytest.mark.parametrize(("kind", "spec", "field"), BAD_SPECS)
def test_bad_input_is_invalid_argument_naming_the_field(
    prior_server, kind: str, spec: object, field: str
) -> None:
    error = submit_error(prior_server.channel, **{kind: spec})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert field in error.details()
