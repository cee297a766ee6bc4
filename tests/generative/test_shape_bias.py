"""The shape_bias job (Geirhos et al. 2019) through the real JobService on the shipped demo models: the
decisions counted per pair agree with the images' own predictions (re-classified here, and one image
rebuilt by a style_transfer job); the same seed gives the same result; the honest `shapes` model and
`shapes-shortcut` come out on opposite sides; bad specs are refused naming the field; progress comes
with previews, and a cancelled job ends CANCELLED."""

from __future__ import annotations

import io
import math
import time

import grpc
import pytest
import torch
from glassbox.backends.torch_backend import TorchModel
from glassbox_client._generated.glassbox.v1 import datasets_pb2, job_service_pb2_grpc
from glassbox_client._generated.glassbox.v1 import generative_pb2 as gen
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import shape_bias_pb2 as sb
from PIL import Image
from support.generative_harness import MODEL, ONNX_MODEL, image_proto, run_job, submit_error, tensor_of

SHORTCUT_MODEL = "shapes-shortcut"
SET = datasets_pb2.ImageSet(named="shapes-val")
LAYERS = {"content_layer": "features.10", "style_layers": ["features.2", "features.6"]}
CLASSES = [gen.ClassRef(label="circle"), gen.ClassRef(label="square")]


def spec(**fields: object) -> sb.ShapeBiasSpec:
    return sb.ShapeBiasSpec(**{"model": MODEL, "images": SET, **LAYERS, **fields})


@pytest.fixture(scope="module")
def tiny(server) -> pb.Job:
    """Two classes, two images per pair, the paper's construction, ten steps."""
    job = run_job(
        server.channel,
        shape_bias=spec(
            seed=3,
            classes=CLASSES,
            images_per_pair=2,
            steps=10,
            examples=2,
            construction=sb.CUE_CONFLICT_CONSTRUCTION_IMAGE,
        ),
    ).job
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error.message
    return job


def test_decisions_are_counted_per_pair_from_each_images_prediction(server, tiny: pb.Job) -> None:
    result = tiny.shape_bias
    assert [(p.shape_label, p.texture_label) for p in result.pairs] == [
        ("circle", "square"),
        ("square", "circle"),
    ]
    assert len(result.images) == 4
    totals = {"shape": 0, "texture": 0, "other": 0}
    for pair in result.pairs:
        members = [
            i
            for i in result.images
            if (i.shape_class, i.texture_class) == (pair.shape_class, pair.texture_class)
        ]
        counted = {
            "shape": sum(i.predicted_class == i.shape_class for i in members),
            "texture": sum(i.predicted_class == i.texture_class for i in members),
        }
        counted["other"] = len(members) - counted["shape"] - counted["texture"]
        assert (pair.decisions.shape, pair.decisions.texture, pair.decisions.other) == tuple(counted.values())
        assert pair.decisions.images == len(members) == 2
        cued = counted["shape"] + counted["texture"]
        if cued:
            assert pair.decisions.shape_bias == pytest.approx(counted["shape"] / cued)
        else:
            assert math.isnan(pair.decisions.shape_bias)
        totals = {k: totals[k] + counted[k] for k in totals}
    overall = result.decisions
    assert (overall.shape, overall.texture, overall.other, overall.images) == (*totals.values(), 4)
    assert result.construction == sb.CUE_CONFLICT_CONSTRUCTION_IMAGE
    assert result.images_set == "shapes-val"
    assert Image.open(io.BytesIO(result.grid_png)).size[0] > 2 * 64

    # The examples (the first image of each pair) classified by the test itself agree with the record.
    model: TorchModel = server.server.context.repository.get(MODEL)
    examples = [i for i in result.images if i.HasField("image")]
    assert len(examples) == 2
    pixels = torch.stack([tensor_of(i.image.pixels) for i in examples])
    probabilities = model.logits(pixels).softmax(dim=1)
    for image, row in zip(examples, probabilities, strict=True):
        assert int(row.argmax()) == image.predicted_class
        assert float(row[image.shape_class]) == pytest.approx(image.shape_probability, abs=1e-4)


def test_an_image_is_what_style_transfer_makes_of_its_pair(server, tiny: pb.Job) -> None:
    """The batched cue-conflict image equals a style_transfer job on the same content and style images."""
    first = tiny.shape_bias.images[0]
    data = server.server.context.repository.dataset(MODEL, "shapes-val", max_pixels=1 << 20)
    index = {name: i for i, name in enumerate(data.names)}
    single = run_job(
        server.channel,
        style_transfer=gen.StyleTransferSpec(
            model=MODEL,
            content_image=image_proto(data.images[index[first.content_image]]),
            style_image=image_proto(data.images[index[first.style_image]]),
            steps=10,
            **LAYERS,
        ),
    ).job
    assert single.state == pb.JOB_STATE_SUCCEEDED, single.error.message
    alone = tensor_of(single.style_transfer.image.pixels)
    assert torch.allclose(tensor_of(first.image.pixels), alone, atol=2e-3)


def test_the_same_seed_gives_the_same_result(server, tiny: pb.Job) -> None:
    again = run_job(
        server.channel,
        shape_bias=spec(
            seed=3,
            classes=CLASSES,
            images_per_pair=2,
            steps=10,
            examples=2,
            construction=sb.CUE_CONFLICT_CONSTRUCTION_IMAGE,
        ),
    ).job.shape_bias
    first = sb.ShapeBiasResult()
    first.CopyFrom(tiny.shape_bias)
    first.wall_seconds = again.wall_seconds = 0
    assert again.SerializeToString(deterministic=True) == first.SerializeToString(deterministic=True)


def test_the_honest_model_follows_the_shape_and_the_shortcut_model_the_scene(server) -> None:
    """One image per pair of all six classes, object construction: the shortcut model follows the other
    class's corner patch (texture), the honest model the shape. Few steps keep it quick; docs/jobs.md has
    the full run."""
    biases = {}
    for model in (MODEL, SHORTCUT_MODEL):
        job = run_job(server.channel, shape_bias=spec(model=model, seed=0, images_per_pair=1, steps=8)).job
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error.message
        assert job.shape_bias.construction == sb.CUE_CONFLICT_CONSTRUCTION_OBJECT  # the sets have masks
        assert job.shape_bias.decisions.images == 30
        assert job.shape_bias.content_accuracy == job.shape_bias.style_accuracy == 1.0
        biases[model] = job.shape_bias.shape_bias
    assert biases[MODEL] >= 0.8
    assert biases[SHORTCUT_MODEL] <= 0.2


INLINE_NO_MASKS = datasets_pb2.ImageSet(
    inline=datasets_pb2.InlineImageSet(
        images=[image_proto(torch.rand(3, 64, 64)) for _ in range(2)], labels=[0, 1]
    )
)
BAD_SPECS = [
    (spec(images=datasets_pb2.ImageSet(named="nope")), "NOT_FOUND", "shape_bias.images.named"),
    (spec(images=datasets_pb2.ImageSet()), "INVALID_ARGUMENT", "shape_bias.images"),
    (spec(classes=[gen.ClassRef(label="hexagon")]), "INVALID_ARGUMENT", "shape_bias.classes[0].label"),
    (spec(classes=[gen.ClassRef(index=6)]), "INVALID_ARGUMENT", "shape_bias.classes[0].index"),
    (spec(classes=[gen.ClassRef(index=1)]), "INVALID_ARGUMENT", "shape_bias.classes"),
    (
        spec(classes=[gen.ClassRef(index=1), gen.ClassRef(label="square")]),
        "INVALID_ARGUMENT",
        "shape_bias.classes",
    ),
    (spec(images_per_pair=0), "INVALID_ARGUMENT", "shape_bias.images_per_pair"),
    (spec(images_per_pair=35), "INVALID_ARGUMENT", "shape_bias.images_per_pair"),  # 30 pairs × 35 > 1024
    (spec(steps=0), "INVALID_ARGUMENT", "shape_bias.steps"),
    (spec(steps=10_001), "INVALID_ARGUMENT", "shape_bias.steps"),
    (spec(learning_rate=0), "INVALID_ARGUMENT", "shape_bias.learning_rate"),
    (spec(examples=17), "INVALID_ARGUMENT", "shape_bias.examples"),
    (spec(content_layer="features.99"), "INVALID_ARGUMENT", "shape_bias.content_layer"),
    (spec(style_layers=[]), "INVALID_ARGUMENT", "shape_bias.style_layers"),
    (spec(construction=7), "INVALID_ARGUMENT", "shape_bias.construction"),
    (
        spec(images=INLINE_NO_MASKS, construction=sb.CUE_CONFLICT_CONSTRUCTION_OBJECT),
        "INVALID_ARGUMENT",
        "shape_bias.images",
    ),
    (
        spec(images=INLINE_NO_MASKS, classes=[gen.ClassRef(index=0), gen.ClassRef(index=2)]),
        "INVALID_ARGUMENT",
        "shape_bias.classes[1]",
    ),
    (spec(model=ONNX_MODEL), "FAILED_PRECONDITION", "shape_bias.model"),
]


@pytest.mark.parametrize(("bad", "code", "field"), BAD_SPECS, ids=[f for _, _, f in BAD_SPECS])
def test_bad_specs_are_refused_naming_the_field(server, bad: sb.ShapeBiasSpec, code: str, field: str) -> None:
    error = submit_error(server.channel, shape_bias=bad)
    assert error.code() == getattr(grpc.StatusCode, code), error.details()
    assert field in error.details()


def test_progress_comes_with_previews_and_a_cancelled_job_ends_cancelled(server) -> None:
    stub = job_service_pb2_grpc.JobServiceStub(server.channel)
    job = stub.SubmitJob(pb.SubmitJobRequest(shape_bias=spec(steps=10_000))).job
    previews = []
    for update in stub.WatchJob(pb.WatchJobRequest(job_id=job.id, preview_every_steps=2), timeout=60):
        if update.preview_png:
            previews.append(update.preview_png)
        if len(previews) >= 2:
            break
    running = stub.GetJob(pb.GetJobRequest(job_id=job.id)).job
    assert running.progress.total == 4 * 10_000  # 30 pairs × 2 images, 16 at a time: 4 batches
    assert Image.open(io.BytesIO(previews[0])).size == (64, 64)
    started = time.monotonic()
    stub.CancelJob(pb.CancelJobRequest(job_id=job.id))
    final = list(stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=60))[-1].job
    assert final.state == pb.JOB_STATE_CANCELLED
    assert time.monotonic() - started < 10
